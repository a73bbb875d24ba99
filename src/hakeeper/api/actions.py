"""Every operator action, once: the CLI commands and the REST API both call these.

Each takes a client of the engine and the config in force, checks the names it is given
(`hakeeper.api.targets`) before writing anything, and returns lines saying what it did
and what the scheduler will now do. A bad name or a refused action is a `ConfigError`.

Resources: move and ban constrain the resource's *unit* (the group or clone it belongs to),
since that is what the scheduler places; the lines say so when it differs from the name
given. They write the operator's keys (constraints, target roles, fail counts) and never
the controller's assignments: the controller reads them and reschedules.

Nodes: standby moves every resource off the node; maintenance leaves what runs there alone.
Both are stored as run-time flags and add to the flags of the cluster file.

Fencing: `through_devices` is Pacemaker's ``stonith_admin --fence`` (the configured devices,
levels, retries and delays, exactly as the controller uses them); `confirm` is the manual
path (``stonith_admin --confirm``, shared/DESIGN.md section 4, rule 2).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace

from hakeeper.api import hints, targets
from hakeeper.coord.base import Coordinator
from hakeeper.errors import ConfigError, CoordError
from hakeeper.fencing.device import FenceAction
from hakeeper.fencing.topology import Fencer
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.events import NodeFenced
from hakeeper.model.records import FencedMark, NodeFlags
from hakeeper.model.roles import RUNNING_ROLES
from hakeeper.model.state import RuntimeKind
from hakeeper.runtime.fence_plan import devices_used, fencer_of
from hakeeper.runtime.snapshot import observe_cluster

RESTART_TIMEOUT = 60.0
RESTART_POLL = 0.5


async def constrain(
    coord: Coordinator, spec: ClusterSpec, kind: RuntimeKind, rid: str, node: str
) -> list[str]:
    """Write a move or ban; return lines saying what the scheduler will now do."""
    targets.require_resource(spec, rid)
    targets.require_node(spec, node)
    store = targets.store_of(coord, spec)
    unit = spec.top_level(rid)
    lines = [f"{rid} is part of {unit}: constraining {unit}"] if unit != rid else []
    existing = await store.constraints_of(unit)
    if existing.get(node) not in (None, kind):
        lines.append(f"replaces the {existing[node]} of {unit} on {node}")
    if kind == "move":
        # A second move replaces the first: two "run only here" constraints would conflict.
        for other, other_kind in sorted(existing.items()):
            if other != node and other_kind == "move":
                await store.clear_constraints(unit, other)
                lines.append(f"replaces the earlier move of {unit} to {other}")
    await store.set_constraint(kind, unit, node)
    verb = "moved to" if kind == "move" else "banned from"
    lines.append(
        f"{unit} {verb} {node}; undo with: {hints.hakeeper('resource', 'clear', unit, node)}"
    )
    return lines + await _consequences(coord, spec, unit)


async def _consequences(coord: Coordinator, spec: ClusterSpec, unit: str) -> list[str]:
    """The scheduler's actions and reasons for ``unit`` on the live state, after the write."""
    tr = (await observe_cluster(targets.store_of(coord, spec), spec, targets.wall())).transition()
    prims = set(targets.primitives_of(spec, unit))
    actions = [a.key for a in tr.actions if a.resource in prims and a.kind != "monitor"]
    lines = [f"scheduler: {a}" for a in actions] or ["scheduler: nothing to do for " + unit]
    related = prims | {unit}
    lines += [
        f"scheduler: {d}"
        for d in tr.decisions
        if d.resource in related and d.kind in ("blocked", "cannot-run", "unmanaged", "frozen")
    ]
    return lines


async def clear(coord: Coordinator, spec: ClusterSpec, rid: str, node: str | None) -> list[str]:
    targets.require_resource(spec, rid)
    if node is not None:
        targets.require_node(spec, node)
    store = targets.store_of(coord, spec)
    unit = spec.top_level(rid)
    count = await store.clear_constraints(unit, node)
    where = f" on {node}" if node else ""
    return [f"cleared {count} move/ban constraint(s) of {unit}{where}"]


async def cleanup(coord: Coordinator, spec: ClusterSpec, rid: str, node: str | None) -> list[str]:
    """Forget fail counts, so the scheduler may place the resource where it failed again."""
    targets.require_resource(spec, rid)
    if node is not None:
        targets.require_node(spec, node)
    store = targets.store_of(coord, spec)
    lines = []
    for prim in targets.primitives_of(spec, rid):
        count = await store.clear_failcounts(prim, node)
        lines.append(f"{prim}: cleared {count} fail count(s)" + (f" on {node}" if node else ""))
    return lines


def _require_top_level(spec: ClusterSpec, rid: str) -> None:
    targets.require_resource(spec, rid)
    unit = spec.top_level(rid)
    if unit != rid:
        # The scheduler reads the target role of the unit only (the config refuses it on
        # members for the same reason).
        raise ConfigError(f"{rid} is part of {unit}: stop, start or restart {unit} instead")


async def set_role(coord: Coordinator, spec: ClusterSpec, rid: str, stopped: bool) -> list[str]:
    _require_top_level(spec, rid)
    await targets.store_of(coord, spec).set_target_role(rid, "stopped" if stopped else None)
    if stopped:
        return [
            f"{rid}: target role stopped; undo with: {hints.hakeeper('resource', 'start', rid)}"
        ]
    return [f"{rid}: run-time target role cleared (the cluster file's target_role applies)"]


async def running_on(coord: Coordinator, spec: ClusterSpec, rid: str) -> list[str]:
    """Nodes (with instance) where a status shows ``rid`` running, on nodes not down."""
    observed = (await observe_cluster(targets.store_of(coord, spec), spec, targets.wall())).observed
    prims = set(targets.primitives_of(spec, rid))
    down = {n.name for n in observed.state.nodes if n.down}
    return sorted(
        f"{s.resource} on {s.node}"
        for s in observed.statuses
        if s.resource in prims and s.role in RUNNING_ROLES and s.node not in down
    )


async def restart(
    coord: Coordinator,
    spec: ClusterSpec,
    rid: str,
    timeout: float = RESTART_TIMEOUT,
    poll: float = RESTART_POLL,
) -> tuple[int, list[str]]:
    """Stop (target role), wait until nothing runs, start. On timeout the stop is undone."""
    _require_top_level(spec, rid)
    store = targets.store_of(coord, spec)
    if await store.target_role(rid) is not None:
        raise ConfigError(
            f"{rid} has a run-time target role (resource stop); "
            f"start it with: {hints.hakeeper('resource', 'start', rid)}"
        )
    await store.set_target_role(rid, "stopped")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        still = await running_on(coord, spec, rid)
        while still and loop.time() < deadline:
            await asyncio.sleep(poll)
            still = await running_on(coord, spec, rid)
    finally:
        # Whatever happened (stopped, timed out, Ctrl-C, engine error), a restart must not
        # leave the resource stopped by the CLI.
        await store.set_target_role(rid, None)
    if still:
        return 1, [
            f"{rid} still runs after {timeout:g}s ({', '.join(still)}); the stop was undone. "
            f"See {hints.hakeeper('status')} for why"
        ]
    return 0, [f"{rid} stopped everywhere; stop undone, the controller starts it again"]


# --- nodes ---------------------------------------------------------------------------------


async def set_flag(
    coord: Coordinator, spec: ClusterSpec, node: str, flag: str, on: bool
) -> list[str]:
    """Read-modify-write of the node's flags; returns what changed, in words."""
    targets.require_node(spec, node)
    store = targets.store_of(coord, spec)
    before = await store.node_flags(node)
    after = replace(before, **{flag: on})
    if after != before:
        await store.set_node_flags(node, after)
    lines = [f"{node}: {_words(after)}" + ("" if after != before else " (unchanged)")]
    configured = spec.node(node)
    if not on and configured is not None and getattr(configured, flag):
        lines.append(f"note: the cluster file sets {flag} = true for {node}; that still applies")
    return lines


def _words(flags: NodeFlags) -> str:
    pairs = (("standby", flags.standby), ("maintenance", flags.maintenance))
    return ", ".join(name for name, on in pairs if on) or "online (no standby, no maintenance)"


# --- fencing -------------------------------------------------------------------------------


async def confirm(
    coord: Coordinator, spec: ClusterSpec, node: str, *, force: bool, now: float
) -> list[str]:
    targets.require_node(spec, node)
    store = targets.store_of(coord, spec)
    alive = await store.is_member(node)
    if alive and not force:
        raise ConfigError(
            f"{node} is online: its member lease is live, so it is running and may hold "
            "resources. Confirming it fenced would let the controller start them elsewhere "
            "while they still run here (split brain, data corruption). Power it off or wait "
            "until its lease expires; --force only if you are certain it is off"
        )
    if not alive and (await store.observe(spec, now)).state.node(node).status == "offline":
        # No status says anything runs there: a fenced mark would only show it as lost.
        return [f"{node} is offline and nothing runs there: nothing to confirm, nothing written"]
    await store.mark_fenced(node, FencedMark(by="operator", ts=now))
    lines = [f"{node} confirmed off by the operator; the controller may now recover what it ran"]
    if alive:
        lines.insert(0, f"warning: {node} still holds its member lease (--force)")
    try:
        await store.event_log("cli").append(
            NodeFenced(ts=now, node=node, device="operator", duration=0.0)
        )
    except CoordError as exc:
        # The confirmation itself is written; only its record in the log is missing.
        lines.append(f"warning: the event log entry was not written ({targets.describe(exc)})")
    return lines


async def through_devices(
    coord: Coordinator,
    spec: ClusterSpec,
    node: str,
    *,
    action: FenceAction,
    now: Callable[[], float],
    fencer: Fencer | None = None,
) -> tuple[bool, list[str]]:
    """Fence ``node`` with the configured devices; (fenced, lines to print)."""
    targets.require_node(spec, node)
    fencer = fencer or fencer_of(spec)
    if fencer is None:
        raise ConfigError(
            "no fence device is configured: add one under [fencing.devices], or power the "
            f"node off by hand and run: {hints.hakeeper('fence', '--confirm', node)}"
        )
    started = time.monotonic()
    outcome = await fencer.fence(node, action)
    duration = time.monotonic() - started
    device = devices_used(outcome)
    lines = [attempt.describe() for attempt in outcome.attempts]
    store = targets.store_of(coord, spec)
    if outcome.fenced:
        await store.mark_fenced(node, FencedMark(by=device, ts=now()))
        lines.append(f"{node} fenced ({action}) {outcome.reason}; marked fenced")
    else:
        lines.append(f"{node} NOT fenced: {outcome.reason}")
    try:
        await store.event_log("cli").append(
            NodeFenced(ts=now(), node=node, device=device, duration=duration, ok=outcome.fenced)
        )
    except CoordError as exc:
        lines.append(f"warning: the event log entry was not written ({targets.describe(exc)})")
    return outcome.fenced, lines
