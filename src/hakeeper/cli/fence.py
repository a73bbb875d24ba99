"""`hakeeper fence NODE` (through the fence devices) and `hakeeper fence --confirm NODE`.

``fence NODE`` is Pacemaker's ``stonith_admin --fence``: the configured devices, levels,
retries and delays, exactly as the controller uses them (`hakeeper.runtime.fence_plan`); on
success the node is marked fenced and the controller may recover what it ran.

``--confirm`` is the manual path (``stonith_admin --confirm``): after checking by hand that a
lost node is powered off, the operator records it (shared/DESIGN.md section 4, rule 2).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console

from hakeeper.cli import cluster_client as cc
from hakeeper.cli import hints
from hakeeper.cli.cluster_client import ConfigOption
from hakeeper.coord.base import Coordinator
from hakeeper.errors import ConfigError, CoordError
from hakeeper.fencing.device import FenceAction
from hakeeper.fencing.topology import Fencer
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.events import NodeFenced
from hakeeper.model.records import FencedMark
from hakeeper.runtime.fence_plan import devices_used, fencer_of

console = Console(soft_wrap=True)


async def confirm(
    coord: Coordinator, spec: ClusterSpec, node: str, *, force: bool, now: float
) -> list[str]:
    cc.require_node(spec, node)
    store = cc.store_of(coord, spec)
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
        lines.append(f"warning: the event log entry was not written ({cc.describe(exc)})")
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
    cc.require_node(spec, node)
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
    store = cc.store_of(coord, spec)
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
        lines.append(f"warning: the event log entry was not written ({cc.describe(exc)})")
    return outcome.fenced, lines


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

    cc.run_command("fence", config, body)
