"""`hakeeper node standby|online|maintenance`: the run-time node flags.

Standby moves every resource off the node; maintenance leaves what runs there alone (the
cluster neither starts, stops nor monitors it). Both are stored under ``runtime/nodes`` and
add to the flags of the cluster file, which these commands cannot clear.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer
from rich.console import Console

from hakeeper.api.actions import set_flag
from hakeeper.cli import cluster_client as cc
from hakeeper.cli import node_members, remote
from hakeeper.cli.cluster_client import ConfigOption
from hakeeper.coord.base import Coordinator
from hakeeper.model.cluster import ClusterSpec

app = typer.Typer(
    help="Put nodes in standby or maintenance, and back online; add, remove, replace nodes.",
    no_args_is_help=True,
)
console = Console(soft_wrap=True)

NodeArg = Annotated[str, typer.Argument(help="A node of the cluster file.")]


def _run(name: str, config: ConfigOption, node: str, flag: str, on: bool) -> None:
    async def body(coord: Coordinator, spec: ClusterSpec) -> int:
        for line in await set_flag(coord, spec, node, flag, on):
            console.print(line, highlight=False)
        return 0

    api_body = {"off": not on} if flag == "maintenance" else {}
    call = remote.Call("POST", f"/v1/nodes/{quote(node, safe='')}/{name}", api_body)
    cc.run_command(f"node {name}", config, body, through_api=call)


@app.command()
def standby(node: NodeArg, config: ConfigOption = cc.DEFAULT_CONFIG) -> None:
    """Move every resource off NODE and keep them off until `node online`."""
    _run("standby", config, node, "standby", True)


@app.command()
def online(node: NodeArg, config: ConfigOption = cc.DEFAULT_CONFIG) -> None:
    """Let NODE run resources again (clears standby)."""
    _run("online", config, node, "standby", False)


@app.command()
def maintenance(
    node: NodeArg,
    config: ConfigOption = cc.DEFAULT_CONFIG,
    off: Annotated[bool, typer.Option("--off", help="End maintenance.")] = False,
) -> None:
    """Leave what runs on NODE alone: not started, stopped or monitored (--off ends it)."""
    _run("maintenance", config, node, "maintenance", not off)


# The membership changes live in their own module; they are commands of this group.
app.command()(node_members.add)
app.command()(node_members.remove)
app.command()(node_members.replace)
