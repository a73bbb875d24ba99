"""`hakeeper resource move|ban|clear|cleanup|stop|start|restart`: steer resources at run time.

The bodies live in `hakeeper.api.actions`, shared with the REST API.

These write the CLI's own keys (``runtime/constraints``, ``runtime/roles``, fail counts) and
never the controller's assignments: the controller reads them and reschedules. A name the
cluster file does not define is refused before anything is written (exit 2).

Move and ban constrain the resource's *unit* (the group or clone it belongs to), since that
is what the scheduler places; the command says so when it differs from the name given.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer
from rich.console import Console

from hakeeper.api.actions import RESTART_TIMEOUT, cleanup, clear, constrain, restart, set_role
from hakeeper.cli import cluster_client as cc
from hakeeper.cli import remote
from hakeeper.cli.cluster_client import ConfigOption
from hakeeper.coord.base import Coordinator
from hakeeper.model.cluster import ClusterSpec

app = typer.Typer(
    help="Move, ban, stop, start, restart resources and clean up their failures.",
    no_args_is_help=True,
)
console = Console(soft_wrap=True)

ResourceArg = Annotated[str, typer.Argument(help="A resource, group or clone id.")]
NodeArg = Annotated[str, typer.Argument(help="A node of the cluster file.")]
OptNodeArg = Annotated[str | None, typer.Argument(help="Only this node (default: all).")]

# --- the commands ---------------------------------------------------------------------------


def _print(lines: list[str]) -> None:
    for line in lines:
        console.print(line, highlight=False)


def _simple(
    name: str,
    config: ConfigOption,
    work: cc.Body,
    rid: str,
    body: dict[str, object],
    extra: float = 0,
) -> None:
    path = f"/v1/resources/{quote(rid, safe='')}/{name}"
    call = remote.Call("POST", path, body, extra)
    cc.run_command(f"resource {name}", config, work, through_api=call)


@app.command()
def move(resource: ResourceArg, node: NodeArg, config: ConfigOption = cc.DEFAULT_CONFIG) -> None:
    """Run RESOURCE on NODE (a location constraint of inf) until cleared."""

    async def body(coord: Coordinator, spec: ClusterSpec) -> int:
        _print(await constrain(coord, spec, "move", resource, node))
        return 0

    _simple("move", config, body, resource, {"node": node})


@app.command()
def ban(resource: ResourceArg, node: NodeArg, config: ConfigOption = cc.DEFAULT_CONFIG) -> None:
    """Never run RESOURCE on NODE (a location constraint of -inf) until cleared."""

    async def body(coord: Coordinator, spec: ClusterSpec) -> int:
        _print(await constrain(coord, spec, "ban", resource, node))
        return 0

    _simple("ban", config, body, resource, {"node": node})


@app.command(name="clear")
def clear_cmd(
    resource: ResourceArg, node: OptNodeArg = None, config: ConfigOption = cc.DEFAULT_CONFIG
) -> None:
    """Remove the moves and bans of RESOURCE (on NODE only, if given)."""

    async def body(coord: Coordinator, spec: ClusterSpec) -> int:
        _print(await clear(coord, spec, resource, node))
        return 0

    _simple("clear", config, body, resource, {"node": node})


@app.command(name="cleanup")
def cleanup_cmd(
    resource: ResourceArg, node: OptNodeArg = None, config: ConfigOption = cc.DEFAULT_CONFIG
) -> None:
    """Forget the fail counts of RESOURCE (on NODE only, if given)."""

    async def body(coord: Coordinator, spec: ClusterSpec) -> int:
        _print(await cleanup(coord, spec, resource, node))
        return 0

    _simple("cleanup", config, body, resource, {"node": node})


@app.command()
def stop(resource: ResourceArg, config: ConfigOption = cc.DEFAULT_CONFIG) -> None:
    """Stop RESOURCE everywhere (a run-time target role) until `resource start`."""

    async def body(coord: Coordinator, spec: ClusterSpec) -> int:
        _print(await set_role(coord, spec, resource, stopped=True))
        return 0

    _simple("stop", config, body, resource, {})


@app.command()
def start(resource: ResourceArg, config: ConfigOption = cc.DEFAULT_CONFIG) -> None:
    """Undo `resource stop`: the cluster file's target role applies again."""

    async def body(coord: Coordinator, spec: ClusterSpec) -> int:
        _print(await set_role(coord, spec, resource, stopped=False))
        return 0

    _simple("start", config, body, resource, {})


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

    _simple("restart", config, body, resource, {"timeout": timeout}, timeout)
