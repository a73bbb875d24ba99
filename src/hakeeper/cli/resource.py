"""`hakeeper resource move|ban|clear|cleanup|stop|start|restart`: steer resources at run time.

These write the CLI's own keys (``runtime/constraints``, ``runtime/roles``, fail counts) and
never the controller's assignments: the controller reads them and reschedules. A name the
cluster file does not define is refused before anything is written (exit 2).

Move and ban constrain the resource's *unit* (the group or clone it belongs to), since that
is what the scheduler places; the command says so when it differs from the name given.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console

from hakeeper.cli import cluster_client as cc
from hakeeper.cli import hints
from hakeeper.cli.cluster_client import ConfigOption
from hakeeper.coord.base import Coordinator
from hakeeper.errors import ConfigError
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.roles import RUNNING_ROLES
from hakeeper.model.state import RuntimeKind
from hakeeper.runtime.snapshot import observe_cluster

app = typer.Typer(
    help="Move, ban, stop, start, restart resources and clean up their failures.",
    no_args_is_help=True,
)
console = Console(soft_wrap=True)

ResourceArg = Annotated[str, typer.Argument(help="A resource, group or clone id.")]
NodeArg = Annotated[str, typer.Argument(help="A node of the cluster file.")]
OptNodeArg = Annotated[str | None, typer.Argument(help="Only this node (default: all).")]

RESTART_TIMEOUT = 60.0
RESTART_POLL = 0.5


# --- logic (async, on any Coordinator) --------------------------------------------------------


async def constrain(
    coord: Coordinator, spec: ClusterSpec, kind: RuntimeKind, rid: str, node: str
) -> list[str]:
    """Write a move or ban; return lines saying what the scheduler will now do."""
    cc.require_resource(spec, rid)
    cc.require_node(spec, node)
    store = cc.store_of(coord, spec)
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
    tr = (await observe_cluster(cc.store_of(coord, spec), spec, cc.wall())).transition()
    prims = set(cc.primitives_of(spec, unit))
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
    cc.require_resource(spec, rid)
    if node is not None:
        cc.require_node(spec, node)
    store = cc.store_of(coord, spec)
    unit = spec.top_level(rid)
    count = await store.clear_constraints(unit, node)
    where = f" on {node}" if node else ""
    return [f"cleared {count} move/ban constraint(s) of {unit}{where}"]


async def cleanup(coord: Coordinator, spec: ClusterSpec, rid: str, node: str | None) -> list[str]:
    """Forget fail counts, so the scheduler may place the resource where it failed again."""
    cc.require_resource(spec, rid)
    if node is not None:
        cc.require_node(spec, node)
    store = cc.store_of(coord, spec)
    lines = []
    for prim in cc.primitives_of(spec, rid):
        count = await store.clear_failcounts(prim, node)
        lines.append(f"{prim}: cleared {count} fail count(s)" + (f" on {node}" if node else ""))
    return lines


def _require_top_level(spec: ClusterSpec, rid: str) -> None:
    cc.require_resource(spec, rid)
    unit = spec.top_level(rid)
    if unit != rid:
        # The scheduler reads the target role of the unit only (the config refuses it on
        # members for the same reason).
        raise ConfigError(f"{rid} is part of {unit}: stop, start or restart {unit} instead")


async def set_role(coord: Coordinator, spec: ClusterSpec, rid: str, stopped: bool) -> list[str]:
    _require_top_level(spec, rid)
    await cc.store_of(coord, spec).set_target_role(rid, "stopped" if stopped else None)
    if stopped:
        return [
            f"{rid}: target role stopped; undo with: {hints.hakeeper('resource', 'start', rid)}"
        ]
    return [f"{rid}: run-time target role cleared (the cluster file's target_role applies)"]


async def running_on(coord: Coordinator, spec: ClusterSpec, rid: str) -> list[str]:
    """Nodes (with instance) where a status shows ``rid`` running, on nodes not down."""
    observed = (await observe_cluster(cc.store_of(coord, spec), spec, cc.wall())).observed
    prims = set(cc.primitives_of(spec, rid))
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
    store = cc.store_of(coord, spec)
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


# --- the commands ---------------------------------------------------------------------------


def _print(lines: list[str]) -> None:
    for line in lines:
        console.print(line, highlight=False)


def _simple(name: str, config: ConfigOption, work: cc.Body) -> None:
    cc.run_command(f"resource {name}", config, work)


@app.command()
def move(resource: ResourceArg, node: NodeArg, config: ConfigOption = cc.DEFAULT_CONFIG) -> None:
    """Run RESOURCE on NODE (a location constraint of inf) until cleared."""

    async def body(coord: Coordinator, spec: ClusterSpec) -> int:
        _print(await constrain(coord, spec, "move", resource, node))
        return 0

    _simple("move", config, body)


@app.command()
def ban(resource: ResourceArg, node: NodeArg, config: ConfigOption = cc.DEFAULT_CONFIG) -> None:
    """Never run RESOURCE on NODE (a location constraint of -inf) until cleared."""

    async def body(coord: Coordinator, spec: ClusterSpec) -> int:
        _print(await constrain(coord, spec, "ban", resource, node))
        return 0

    _simple("ban", config, body)


@app.command(name="clear")
def clear_cmd(
    resource: ResourceArg, node: OptNodeArg = None, config: ConfigOption = cc.DEFAULT_CONFIG
) -> None:
    """Remove the moves and bans of RESOURCE (on NODE only, if given)."""

    async def body(coord: Coordinator, spec: ClusterSpec) -> int:
        _print(await clear(coord, spec, resource, node))
        return 0

    _simple("clear", config, body)


@app.command(name="cleanup")
def cleanup_cmd(
    resource: ResourceArg, node: OptNodeArg = None, config: ConfigOption = cc.DEFAULT_CONFIG
) -> None:
    """Forget the fail counts of RESOURCE (on NODE only, if given)."""

    async def body(coord: Coordinator, spec: ClusterSpec) -> int:
        _print(await cleanup(coord, spec, resource, node))
        return 0

    _simple("cleanup", config, body)


@app.command()
def stop(resource: ResourceArg, config: ConfigOption = cc.DEFAULT_CONFIG) -> None:
    """Stop RESOURCE everywhere (a run-time target role) until `resource start`."""

    async def body(coord: Coordinator, spec: ClusterSpec) -> int:
        _print(await set_role(coord, spec, resource, stopped=True))
        return 0

    _simple("stop", config, body)


@app.command()
def start(resource: ResourceArg, config: ConfigOption = cc.DEFAULT_CONFIG) -> None:
    """Undo `resource stop`: the cluster file's target role applies again."""

    async def body(coord: Coordinator, spec: ClusterSpec) -> int:
        _print(await set_role(coord, spec, resource, stopped=False))
        return 0

    _simple("start", config, body)


@app.command(name="restart")
def restart_cmd(
    resource: ResourceArg,
    config: ConfigOption = cc.DEFAULT_CONFIG,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the stop; then it is undone, exit 1.")
    ] = RESTART_TIMEOUT,
) -> None:
    """Stop RESOURCE everywhere, wait until it runs nowhere, then start it again."""

    async def body(coord: Coordinator, spec: ClusterSpec) -> int:
        code, lines = await restart(coord, spec, resource, timeout)
        _print(lines)
        return code

    _simple("restart", config, body)
