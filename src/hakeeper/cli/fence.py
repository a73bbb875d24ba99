"""`hakeeper fence NODE` (through the fence devices) and `hakeeper fence --confirm NODE`.

``fence NODE`` is Pacemaker's ``stonith_admin --fence``: the configured devices, levels,
retries and delays, exactly as the controller uses them (`hakeeper.runtime.fence_plan`); on
success the node is marked fenced and the controller may recover what it ran.

``--confirm`` is the manual path (``stonith_admin --confirm``): after checking by hand that a
lost node is powered off, the operator records it (shared/DESIGN.md section 4, rule 2).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer
from rich.console import Console

from hakeeper.api.actions import confirm, through_devices
from hakeeper.cli import cluster_client as cc
from hakeeper.cli import remote
from hakeeper.cli.cluster_client import ConfigOption
from hakeeper.coord.base import Coordinator
from hakeeper.fencing.device import FenceAction
from hakeeper.model.cluster import ClusterSpec

console = Console(soft_wrap=True)


def fence(
    node: Annotated[str, typer.Argument(help="A node of the cluster file.")],
    confirm_off: Annotated[
        bool, typer.Option("--confirm", help="Record that NODE is off (checked by you).")
    ] = False,
    reboot: Annotated[
        bool, typer.Option("--reboot", help="Ask the devices for reboot instead of off.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="--confirm even if NODE holds its member lease.")
    ] = False,
    config: ConfigOption = cc.DEFAULT_CONFIG,
) -> None:
    """Fence NODE through the fence devices, or record that it is off (--confirm)."""

    async def body(coord: Coordinator, spec: ClusterSpec) -> int:
        if confirm_off:
            for line in await confirm(coord, spec, node, force=force, now=cc.wall()):
                console.print(line, highlight=False)
            return 0
        action: FenceAction = "reboot" if reboot else "off"
        fenced, lines = await through_devices(coord, spec, node, action=action, now=cc.wall)
        for line in lines:
            console.print(line, highlight=False)
        return 0 if fenced else 1

    call = remote.Call(
        "POST",
        f"/v1/nodes/{quote(node, safe='')}/fence",
        {"confirm": confirm_off, "reboot": reboot, "force": force},
        extra=120.0,
    )
    cc.run_command("fence", config, body, through_api=call)
