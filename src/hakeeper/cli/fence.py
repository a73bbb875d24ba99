"""`hakeeper fence --confirm NODE`: the operator asserts that a node is off.

The manual path of fencing (Pacemaker's ``stonith_admin --confirm``): after checking by hand
that a lost node is powered off, the operator records it, and the controller may recover
what the node ran (shared/DESIGN.md section 4, rule 2). Device fencing from the CLI comes
with the fencing issue.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from hakeeper.cli import cluster_client as cc
from hakeeper.cli.cluster_client import ConfigOption
from hakeeper.cluster.events_log import EventLog
from hakeeper.coord.base import Coordinator
from hakeeper.errors import ConfigError, CoordError
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.events import NodeFenced

console = Console(soft_wrap=True)


async def confirm(
    coord: Coordinator, spec: ClusterSpec, node: str, *, force: bool, now: float
) -> list[str]:
    cc.require_node(spec, node)
    keys = cc.keyspace(spec)
    alive = await coord.get(keys.member(node)) is not None
    if alive and not force:
        raise ConfigError(
            f"{node} is online: its member lease is live, so it is running and may hold "
            "resources. Confirming it fenced would let the controller start them elsewhere "
            "while they still run here (split brain, data corruption). Power it off or wait "
            "until its lease expires; --force only if you are certain it is off"
        )
    store = cc.store_of(coord, spec)
    if not alive and (await store.observe(spec, now)).state.node(node).status == "offline":
        # No status says anything runs there: a fenced mark would only show it as lost.
        return [f"{node} is offline and nothing runs there: nothing to confirm, nothing written"]
    await store.confirm_fenced(node, by="operator", now=now)
    lines = [f"{node} confirmed off by the operator; the controller may now recover what it ran"]
    if alive:
        lines.insert(0, f"warning: {node} still holds its member lease (--force)")
    try:
        await EventLog(coord, keys, "cli").append(
            NodeFenced(ts=now, node=node, device="operator", duration=0.0)
        )
    except CoordError as exc:
        # The confirmation itself is written; only its record in the log is missing.
        lines.append(f"warning: the event log entry was not written ({cc.describe(exc)})")
    return lines


def fence(
    node: Annotated[str, typer.Argument(help="A node of the cluster file.")],
    confirm_off: Annotated[
        bool, typer.Option("--confirm", help="Record that NODE is off (checked by you).")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Even if NODE still holds its member lease.")
    ] = False,
    config: ConfigOption = cc.DEFAULT_CONFIG,
) -> None:
    """Record that NODE is powered off (--confirm), so its resources can be recovered."""
    if not confirm_off:
        typer.echo(
            "hakeeper fence: fencing through a device from the CLI is not available yet "
            "(it comes with the fencing issue); use --confirm NODE after powering it off",
            err=True,
        )
        raise typer.Exit(2)

    async def body(coord: Coordinator, spec: ClusterSpec) -> int:
        for line in await confirm(coord, spec, node, force=force, now=cc.wall()):
            console.print(line, highlight=False)
        return 0

    cc.run_command("fence", config, body)
