"""A rolling upgrade, one node at a time, each step gated on what the cluster itself reports.

For each node in turn: drain it (standby; wait until what ran there runs elsewhere), wait for
its daemon to stop and come back (the operator or the package manager installs the new release
and restarts it: hakeeper does not log into machines), wait until it has rejoined and caught
up, then put it online and go on. The first gate that does not open in time stops the roll
with the node, the step and what to check; nothing is undone behind the operator's back (a
drained node stays in standby until ``hakeeper node online``).

*Caught up*: a daemon publishes its member record only after its coordinator is open (for the
embedded Raft: its member has applied the group's membership) and after it has probed what
runs on its node; the record is a write of its own, which returns only once its own state
machine applied it. A member record under a new lease therefore proves that the restarted node
applied the log at least up to its rejoin. Its record also carries its release and the format
versions it speaks (`hakeeper.model.wire_version`), which the plan shows: the cluster's Raft
peer wire runs at the newest version every member speaks, rising as the last old node goes.

*Session store in sync*: a node that runs a replica of a session store (``agent =
"sessions"``) gets it back only once it is online again (a standby node runs nothing), and
its copy starts from where it stopped. Before the roll goes on to the next node, the
restarted node's replica must have caught up: ``sync`` (a `ReplicaSync`, given by the face
that can reach the stores: the runtime does not speak their protocol) says what is still
behind, and the roll waits up to ``Timeouts.sync`` for it to say nothing. Draining the next
node earlier could leave a majority of the store's copies behind its primary.

The controller is drained last, so that the roll costs one controller election, not one per
node.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from hakeeper.errors import CoordError, HakeeperError
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.wire_version import Format, VersionRange
from hakeeper.runtime.observed import Observed
from hakeeper.runtime.store import ClusterStore

POLL = 0.5  # seconds between two looks at the cluster while a gate is closed
DRAIN_TIMEOUT = 120.0
RESTART_TIMEOUT = 600.0  # the operator installs the release in this time
REJOIN_TIMEOUT = 120.0
SYNC_TIMEOUT = 300.0  # a replica copies the store whole (a snapshot) well within this

#: What of ``node``'s session-store replicas is still behind its primary, one line per store
#: (empty: every replica it runs is in sync, or it runs none).
ReplicaSync = Callable[[str], Awaitable[tuple[str, ...]]]


async def no_replicas(node: str) -> tuple[str, ...]:
    """The `ReplicaSync` of a cluster without a session store."""
    return ()


class GateFailed(HakeeperError):
    """A gate of the roll did not open in time; the message names node, step and checks."""


@dataclass(frozen=True, slots=True)
class NodeRelease:
    """One node as the plan shows it."""

    node: str
    online: bool
    controller: bool
    standby: bool
    release: str  # "" : a release before versions, or not online
    raft_wire: VersionRange | None


@dataclass(frozen=True, slots=True)
class UpgradePlan:
    nodes: tuple[NodeRelease, ...]
    order: tuple[str, ...]
    cluster_wire: int | None  # the Raft peer-wire version every member speaks, if all say
    problems: tuple[str, ...]  # why the roll cannot start now (empty: it can)


@dataclass(frozen=True, slots=True)
class Step:
    """One gate passed (or about to be waited for, ``done`` False)."""

    node: str
    step: str  # drain | restart | rejoin | online | sync
    done: bool
    detail: str
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Timeouts:
    drain: float = DRAIN_TIMEOUT
    restart: float = RESTART_TIMEOUT
    rejoin: float = REJOIN_TIMEOUT
    sync: float = SYNC_TIMEOUT


async def plan(store: ClusterStore, spec: ClusterSpec) -> UpgradePlan:
    """Who runs what, the order of the roll, and whatever stops it from starting."""
    observed = await store.observe(spec, time.time())
    records = await store.member_records()
    leases = await store.member_leases()
    controller = leases.controller.node if leases.controller else None
    rows = []
    for node in (n.name for n in spec.nodes):
        record = records.get(node)
        state = observed.state.node(node)
        rows.append(
            NodeRelease(
                node,
                record is not None,
                node == controller,
                state.standby,
                record.release if record else "",
                record.versions_of(Format.RAFT_PEER_WIRE) if record else None,
            )
        )
    order = tuple(sorted((r.node for r in rows), key=lambda n: (n == controller, n)))
    problems = [
        f"{r.node} is not online: a roll needs every node up (start it, or check `hakeeper status`)"
        for r in rows
        if not r.online
    ]
    problems += [
        f"{r.node} is in standby: a roll drains one node at a time (run `hakeeper node online "
        f"{r.node}` first)"
        for r in rows
        if r.standby
    ]
    wires = [r.raft_wire for r in rows]
    cluster_wire = min(w.newest for w in wires if w) if all(wires) and wires else None
    return UpgradePlan(tuple(rows), order, cluster_wire, tuple(problems))


Report = Callable[[Step], None]


async def roll(
    store: ClusterStore,
    spec: ClusterSpec,
    order: tuple[str, ...],
    report: Report,
    timeouts: Timeouts = Timeouts(),
    sync: ReplicaSync = no_replicas,
) -> None:
    """Upgrade ``order`` one node at a time; GateFailed at the first gate that stays shut."""
    for node in order:
        await _one_node(store, spec, node, report, timeouts)
        await await_replicas_in_sync(node, report, timeouts.sync, sync)


async def await_replicas_in_sync(
    node: str, report: Report, timeout: float, sync: ReplicaSync
) -> None:
    """Wait until ``node``'s session-store replicas have caught up with their primaries."""
    started = time.monotonic()
    deadline = started + timeout
    behind = await sync(node)
    if behind:
        report(Step(node, "sync", False, f"{'; '.join(behind)}; waiting up to {timeout:g}s"))
    while behind:
        if time.monotonic() >= deadline:
            raise GateFailed(
                f"{node}: its session-store replica has not caught up within {timeout:g}s "
                f"({'; '.join(behind)}); the roll stops before the next node. Check: hakeeper "
                "status (does the store's clone run there?); once it has caught up, run "
                "`hakeeper upgrade --rolling` again"
            )
        await asyncio.sleep(POLL)
        behind = await sync(node)
    report(Step(node, "sync", True, "no session-store replica behind", time.monotonic() - started))


async def _one_node(
    store: ClusterStore, spec: ClusterSpec, node: str, report: Report, timeouts: Timeouts
) -> None:
    before = await store.observe(spec, time.time())
    ran_here = [r for r in _resources(before) if node in before.running_on(r)]
    leases = (await store.member_leases()).leases
    missing = [n.name for n in spec.nodes if n.name not in leases]
    if missing:
        # One node out at a time: draining another now could cost the quorum or a resource.
        raise GateFailed(
            f"{node}: not drained, because {', '.join(missing)} is not online. Check: "
            "hakeeper status; start it, then run `hakeeper upgrade --rolling` again"
        )
    old_lease = leases[node]

    started = time.monotonic()
    flags = await store.node_flags(node)
    await store.set_node_flags(node, replace(flags, standby=True))

    def drained(o: Observed) -> bool:
        return all(node not in o.running_on(r) and o.running_on(r) for r in ran_here)

    await _until(
        store, spec, drained, timeouts.drain,
        f"{node}: its resources ({', '.join(ran_here)}) did not all move away within "
        f"{timeouts.drain:g}s. It stays in standby. Check: hakeeper status (a resource "
        f"that may run nowhere else?); undo: hakeeper node online {node}",
    )  # fmt: skip
    moved = ", ".join(ran_here) or "nothing ran there"
    report(Step(node, "drain", True, f"standby; moved: {moved}", time.monotonic() - started))

    report(
        Step(
            node, "restart", False,
            f"stop hakeeper on {node}, install the new release, start it (e.g. systemctl "
            f"restart hakeeper); waiting up to {timeouts.restart:g}s",
        )
    )  # fmt: skip
    started = time.monotonic()

    async def restarted() -> bool:
        lease = (await store.member_leases()).leases.get(node)
        return lease is not None and lease != old_lease

    await _until_true(
        restarted, timeouts.restart,
        f"{node}: its daemon did not come back under a new lease within "
        f"{timeouts.restart:g}s. Check on {node}: journalctl -u hakeeper (a start-up error "
        f"names the fix); it stays in standby until: hakeeper node online {node}",
    )  # fmt: skip
    report(Step(node, "restart", True, "back under a new lease", time.monotonic() - started))

    started = time.monotonic()
    await _until(
        store, spec, lambda o: o.state.node(node).status == "online", timeouts.rejoin,
        f"{node}: rejoined but not online within {timeouts.rejoin:g}s. Check: hakeeper "
        "status",
    )  # fmt: skip
    record = (await store.member_records()).get(node)
    wire = record.versions_of(Format.RAFT_PEER_WIRE) if record else None
    release = record.release if record and record.release else "a release before versions"
    report(
        Step(
            node, "rejoin", True,
            f"caught up; runs {release}, Raft peer wire {wire or 1}", time.monotonic() - started,
        )
    )  # fmt: skip

    started = time.monotonic()
    flags = await store.node_flags(node)
    await store.set_node_flags(node, replace(flags, standby=False))
    if not await store.has_quorum():
        raise GateFailed(f"{node}: online, but the cluster has no quorum. Check: hakeeper status")
    report(Step(node, "online", True, "standby cleared", time.monotonic() - started))


def _resources(observed: Observed) -> list[str]:
    return sorted({s.resource for s in observed.statuses})


async def _until(
    store: ClusterStore,
    spec: ClusterSpec,
    check: Callable[[Observed], bool],
    timeout: float,
    failure: str,
) -> None:
    async def holds() -> bool:
        return check(await store.observe(spec, time.time()))

    await _until_true(holds, timeout, failure)


async def _until_true(check: Callable[[], Awaitable[bool]], timeout: float, failure: str) -> None:
    """Poll ``check`` until it holds; an engine error (an election) is one more poll."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if await check():
                return
        except CoordError:
            pass  # an election in progress: the next poll asks again
        await asyncio.sleep(POLL)
    raise GateFailed(failure)
