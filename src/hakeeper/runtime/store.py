"""Typed cluster state in the coordination key space, and the snapshot the scheduler reads.

Who writes what (shared/DESIGN.md section 2) — nothing else writes these keys:

=================================  ========================================================
key (under /hakeeper/<cluster>/)   written by
=================================  ========================================================
``members/<node>`` (leased)        the node itself (`hakeeper.runtime.membership`)
``controller`` (leased)            the controller election
``assignments/<resource>``         the controller, in txns guarded by its term; the key's
                                   ``mod_revision`` is the assignment's epoch (fencing token)
``status/<node>/<resource>#<i>``   the node's executor only (not leased: after a crash it is
                                   the evidence of what may still run there)
``failcounts/<node>/<resource>``   the node's executor; the CLI's ``resource cleanup``
``runtime/constraints/<r>/<node>`` the CLI (``resource move|ban|clear``)
``runtime/nodes/<node>``           the CLI (``node standby|online|maintenance``)
``runtime/fenced/<node>``          the controller after a fence device confirmed the node off,
                                   or the operator (``hakeeper fence --confirm``)
``runtime/leaving/<node>``         the node itself while it shuts down (counts as standby)
``config``                         ``hakeeper config apply`` (the cluster file's text)
=================================  ========================================================

The stored config is read through `stored_spec`: bytes that are not UTF-8, too large, nest
too deep or do not validate are one `ConfigError` (rule 5: refused where it is read; every
node keeps its last good config), never another exception that would stop the reader.

A node is *online* while its member key exists; otherwise *lost* if any status of it still
says something runs there (and *fenced* once confirmed off), else *offline*.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hakeeper.config.loader import spec_from_text
from hakeeper.coord.base import KV, Coordinator
from hakeeper.errors import ConfigError
from hakeeper.model.cluster import ClusterSpec, TargetRole
from hakeeper.model.records import Assignment, InstanceStatus, NodeFlags, Placement
from hakeeper.model.state import (
    ClusterState,
    FailCount,
    Instance,
    NodeState,
    RuntimeConstraint,
)
from hakeeper.runtime.keys import KeySpace


def encode_assignment(assignment: Assignment) -> bytes:
    return json.dumps(
        {"placements": [[p.node, p.role, p.instance] for p in assignment.placements]}
    ).encode()


def decode_assignment(kv: KV, resource: str) -> Assignment:
    data = json.loads(kv.value)
    placements = tuple(Placement(n, r, int(i)) for n, r, i in data["placements"])
    return Assignment(resource, placements, kv.mod_revision)


def encode_status(status: InstanceStatus) -> bytes:
    return json.dumps(
        {
            "role": status.role,
            "epoch": status.epoch,
            "ts": status.ts,
            "op": status.op,
            "rc": status.rc,
            "reason": status.reason,
        }
    ).encode()


def decode_status(kv: KV, keys: KeySpace) -> InstanceStatus:
    node, _, name = kv.key[len(keys.status) :].partition("/")
    resource, _, instance = name.rpartition("#")
    data = json.loads(kv.value)
    return InstanceStatus(
        resource,
        node,
        int(instance),
        data["role"],
        int(data["epoch"]),
        float(data["ts"]),
        str(data.get("op", "")),
        int(data.get("rc", 0)),
        str(data.get("reason", "")),
    )


@dataclass(frozen=True, slots=True)
class Observed:
    """One consistent read of the key space: the scheduler's snapshot and what produced it."""

    state: ClusterState
    assignments: Mapping[str, Assignment]
    statuses: tuple[InstanceStatus, ...]
    members: frozenset[str]
    target_roles: Mapping[str, TargetRole]
    revision: int

    def running_on(self, resource: str) -> list[str]:
        """The nodes not down whose status shows ``resource`` started or promoted, sorted."""
        return sorted(
            s.node
            for s in self.statuses
            if s.resource == resource
            and s.role in ("started", "promoted")
            and not self.state.node(s.node).down
        )


class ClusterStore:
    """Reads and writes the cluster's records; every read of the whole is one revision."""

    def __init__(self, coord: Coordinator, keys: KeySpace) -> None:
        self.coord = coord
        self.keys = keys

    # --- keys ------------------------------------------------------------------------------

    def status_key(self, node: str, resource: str, instance: int) -> str:
        return f"{self.keys.status}{node}/{resource}#{instance}"

    def constraint_key(self, resource: str, node: str) -> str:
        return f"{self.keys.runtime}constraints/{resource}/{node}"

    def node_flags_key(self, node: str) -> str:
        return f"{self.keys.runtime}nodes/{node}"

    def fenced_key(self, node: str) -> str:
        return self.keys.fenced(node)

    def leaving_key(self, node: str) -> str:
        return f"{self.keys.runtime}leaving/{node}"

    def target_role_key(self, resource: str) -> str:
        return f"{self.keys.runtime}roles/{resource}"

    @property
    def config_key(self) -> str:
        return f"{self.keys.root}config"

    # --- the snapshot ------------------------------------------------------------------------

    async def observe(self, spec: ClusterSpec, now: float) -> Observed:
        kvs = await self.coord.range(self.keys.root)
        revision = max((kv.mod_revision for kv in kvs), default=0)
        return build_observed(self.keys, spec, kvs, now, revision)

    # --- writers -------------------------------------------------------------------------------

    async def report(self, status: InstanceStatus) -> None:
        key = self.status_key(status.node, status.resource, status.instance)
        await self.coord.put(key, encode_status(status))

    async def forget_status(self, node: str, resource: str, instance: int) -> None:
        await self.coord.delete(self.status_key(node, resource, instance))

    async def record_failure(self, node: str, resource: str, now: float) -> FailCount:
        key = self.keys.failcount(node, resource)
        kv = await self.coord.get(key)
        count = (json.loads(kv.value)["count"] if kv else 0) + 1
        await self.coord.put(key, json.dumps({"count": count, "last_failure": now}).encode())
        return FailCount(resource, node, count, now)

    async def clear_failcounts(self, resource: str, node: str | None = None) -> int:
        kvs = await self.coord.range(self.keys.failcounts)
        doomed = [
            kv.key
            for kv in kvs
            if kv.key.endswith(f"/{resource}")
            and (node is None or kv.key == self.keys.failcount(node, resource))
        ]
        for key in doomed:
            await self.coord.delete(key)
        return len(doomed)

    async def set_constraint(self, kind: Literal["move", "ban"], resource: str, node: str) -> None:
        await self.coord.put(
            self.constraint_key(resource, node), json.dumps({"kind": kind}).encode()
        )

    async def clear_constraints(self, resource: str, node: str | None = None) -> int:
        prefix = self.constraint_key(resource, node or "")
        return await self.coord.delete(prefix, prefix=node is None)

    async def set_node_flags(self, node: str, flags: NodeFlags) -> None:
        await self.coord.put(
            self.node_flags_key(node),
            json.dumps({"standby": flags.standby, "maintenance": flags.maintenance}).encode(),
        )

    async def node_flags(self, node: str) -> NodeFlags:
        kv = await self.coord.get(self.node_flags_key(node))
        return _flags(kv.value) if kv else NodeFlags()

    async def set_target_role(self, resource: str, role: TargetRole | None) -> None:
        """``resource stop|start`` from the CLI: overrides the file's target_role; None clears."""
        key = self.target_role_key(resource)
        if role is None:
            await self.coord.delete(key)
        else:
            await self.coord.put(key, role.encode())

    async def confirm_fenced(self, node: str, by: str, now: float) -> None:
        """Record that ``node`` is certainly off: what it ran runs no more."""
        await self.coord.put(self.fenced_key(node), json.dumps({"by": by, "ts": now}).encode())

    async def rejoined(self, node: str) -> None:
        """A node that comes back clears its fenced and leaving marks (after re-probing)."""
        await self.coord.delete(self.fenced_key(node))
        await self.coord.delete(self.leaving_key(node))

    async def leaving(self, node: str) -> None:
        """A node shutting down: the scheduler treats it as standby and moves its resources."""
        await self.coord.put(self.leaving_key(node), b"1")

    async def stored_config(self) -> str | None:
        """The stored config's text; a ConfigError when its bytes are not UTF-8."""
        kv = await self.coord.get(self.config_key)
        return stored_text(kv.value, f"stored config rev {kv.mod_revision}") if kv else None

    async def stored_config_problem(self) -> StoredConfigProblem | None:
        """Why the stored config is refused (for ``status``), or None when it loads or is
        absent."""
        kv = await self.coord.get(self.config_key)
        if kv is None:
            return None
        try:
            stored_spec(kv.value, f"stored config rev {kv.mod_revision}")
        except ConfigError as exc:
            return StoredConfigProblem(kv.mod_revision, short_reason(exc))
        return None


@dataclass(frozen=True, slots=True)
class StoredConfigProblem:
    revision: int
    reason: str

    def warning(self) -> str:
        return (
            f"the stored config (revision {self.revision}) is refused: {self.reason}; every "
            "node keeps running its last good config. Fix: hakeeper config apply "
            "<a valid cluster file>"
        )


REASON_LIMIT = 300


def short_reason(exc: ConfigError) -> str:
    """A refusal's first two lines, bounded, for events and ``status``."""
    text = "; ".join(str(exc).splitlines()[:2])
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 3] + "..."


def stored_text(raw: bytes, source: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{source}: not UTF-8 (byte {exc.start}); write a cluster file with "
            "hakeeper config apply"
        ) from None


def stored_spec(raw: bytes, source: str) -> ClusterSpec:
    """The stored config's bytes to a validated spec; any failure is one ConfigError."""
    return spec_from_text(stored_text(raw, source), source)


def build_observed(
    keys: KeySpace, spec: ClusterSpec, kvs: Sequence[KV], now: float, revision: int
) -> Observed:
    """The scheduler's snapshot from the raw keys (pure: tests feed it keys directly)."""
    members: set[str] = set()
    assignments: dict[str, Assignment] = {}
    statuses: list[InstanceStatus] = []
    failcounts: list[FailCount] = []
    constraints: list[RuntimeConstraint] = []
    flags: dict[str, NodeFlags] = {}
    fenced: set[str] = set()
    roles: dict[str, TargetRole] = {}
    leaving: set[str] = set()
    for kv in kvs:
        key = kv.key
        if key.startswith(keys.members):
            members.add(key[len(keys.members) :])
        elif key.startswith(keys.assignments):
            resource = key[len(keys.assignments) :]
            assignments[resource] = decode_assignment(kv, resource)
        elif key.startswith(keys.status):
            statuses.append(decode_status(kv, keys))
        elif key.startswith(keys.failcounts):
            node, _, resource = key[len(keys.failcounts) :].partition("/")
            data = json.loads(kv.value)
            failcounts.append(
                FailCount(resource, node, int(data["count"]), float(data["last_failure"]))
            )
        elif key.startswith(f"{keys.runtime}constraints/"):
            resource, _, node = key[len(f"{keys.runtime}constraints/") :].partition("/")
            constraints.append(RuntimeConstraint(json.loads(kv.value)["kind"], resource, node))
        elif key.startswith(f"{keys.runtime}nodes/"):
            flags[key[len(f"{keys.runtime}nodes/") :]] = _flags(kv.value)
        elif key.startswith(f"{keys.runtime}fenced/"):
            fenced.add(key[len(f"{keys.runtime}fenced/") :])
        elif key.startswith(f"{keys.runtime}leaving/"):
            leaving.add(key[len(f"{keys.runtime}leaving/") :])
        elif key.startswith(f"{keys.runtime}roles/"):
            roles[key[len(f"{keys.runtime}roles/") :]] = _target_role(kv.value)

    # A fenced node's statuses are history until it has re-probed and cleared its mark.
    live_statuses = [s for s in statuses if s.node not in fenced]
    for node in leaving:
        flags[node] = NodeFlags(True, flags.get(node, NodeFlags()).maintenance)
    nodes = tuple(
        _node_state(n.name, members, fenced, live_statuses, flags.get(n.name, NodeFlags()))
        for n in spec.nodes
    )
    instances = tuple(
        Instance(s.resource, s.node, s.role)
        for s in sorted(live_statuses, key=lambda s: (s.resource, s.node, s.instance))
        if s.role != "stopped"
    )
    state = ClusterState(
        now=now,
        quorum=True,
        nodes=nodes,
        instances=instances,
        failcounts=tuple(sorted(failcounts, key=lambda f: (f.resource, f.node))),
        constraints=tuple(sorted(constraints, key=lambda c: (c.resource, c.node))),
        assignments=tuple(assignments[r] for r in sorted(assignments)),
    )
    return Observed(state, assignments, tuple(statuses), frozenset(members), roles, revision)


def _node_state(
    name: str,
    members: set[str],
    fenced: set[str],
    statuses: Sequence[InstanceStatus],
    flags: NodeFlags,
) -> NodeState:
    if name in members:
        return NodeState(name, "online", standby=flags.standby, maintenance=flags.maintenance)
    if name in fenced:
        return NodeState(name, "lost", fenced=True, standby=flags.standby)
    runs = any(s.node == name and s.role != "stopped" for s in statuses)
    return NodeState(name, "lost" if runs else "offline", standby=flags.standby)


def _target_role(raw: bytes) -> TargetRole:
    role = raw.decode()
    if role not in ("started", "stopped", "unpromoted"):
        raise ValueError(f"stored target role {role!r} is not started, stopped or unpromoted")
    return role  # type: ignore[return-value]


def _flags(raw: bytes) -> NodeFlags:
    data: dict[str, Any] = json.loads(raw)
    return NodeFlags(bool(data.get("standby")), bool(data.get("maintenance")))
