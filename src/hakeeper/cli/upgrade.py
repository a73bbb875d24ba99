"""`hakeeper upgrade [--rolling]`: upgrade hakeeper itself one node at a time, without an outage.

Without ``--rolling`` it shows the plan and changes nothing: each node's release and Raft
peer-wire versions, the order (the controller last) and whatever would stop the roll. With
``--rolling`` it shows the plan, then for each node in turn drains it, waits while the
operator (or the package manager) stops its daemon, installs the new release and starts it,
waits until it has rejoined and caught up, puts it online, and waits until its session-store
replicas have caught up with their primaries (`hakeeper.cli.upgrade_sync`); it stops at the
first gate that does not open in time, naming the node and what to check
(`hakeeper.runtime.rolling_upgrade`).

The install itself stays outside: hakeeper does not log into machines, and a package upgrade
restarts the daemon on its own. The command watches for that restart instead of causing it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hakeeper.cli import cluster_client as cc
from hakeeper.cli.cluster_client import ConfigOption, JsonOption
from hakeeper.cli.upgrade_sync import SessionReplicas
from hakeeper.coord.base import Coordinator
from hakeeper.model.cluster import ClusterSpec
from hakeeper.runtime.rolling_upgrade import (
    DRAIN_TIMEOUT,
    RESTART_TIMEOUT,
    SYNC_TIMEOUT,
    GateFailed,
    Step,
    Timeouts,
    UpgradePlan,
    plan,
    roll,
)

console = Console(soft_wrap=True)


def upgrade(
    config: ConfigOption = cc.DEFAULT_CONFIG,
    rolling: Annotated[
        bool, typer.Option("--rolling", help="Run the roll (without it: show the plan only).")
    ] = False,
    restart_timeout: Annotated[
        float,
        typer.Option(
            help="Seconds to wait for each node's daemon to come back on the new release."
        ),
    ] = RESTART_TIMEOUT,
    drain_timeout: Annotated[
        float,
        typer.Option(
            min=1.0, max=86400.0, help="Seconds to wait for a drained node's resources to move."
        ),
    ] = DRAIN_TIMEOUT,
    sync_timeout: Annotated[
        float,
        typer.Option(
            min=1.0,
            max=86400.0,
            help="Seconds to wait for a restarted node's session-store replicas to catch up.",
        ),
    ] = SYNC_TIMEOUT,
    as_json: JsonOption = False,
) -> None:
    """Upgrade hakeeper node by node: drain, restart on the new release, rejoin, online,
    session store in sync."""
    timeouts = Timeouts(drain=drain_timeout, restart=restart_timeout, sync=sync_timeout)

    async def body(coord: Coordinator, spec: ClusterSpec) -> int:
        return await run_upgrade(coord, spec, rolling=rolling, timeouts=timeouts, as_json=as_json)

    cc.run_command("upgrade", config, body)


async def run_upgrade(
    coord: Coordinator, spec: ClusterSpec, *, rolling: bool, timeouts: Timeouts, as_json: bool
) -> int:
    """The plan; with ``rolling`` the roll. 0 done (or ready), 1 a gate stayed shut."""
    store = cc.store_of(coord, spec)
    the_plan = await plan(store, spec)
    _show_plan(the_plan, as_json)
    if the_plan.problems:
        return 1
    if not rolling:
        if not as_json:
            console.print("ready: run `hakeeper upgrade --rolling` to start", highlight=False)
        return 0

    def report(step: Step) -> None:
        if as_json:
            print(json.dumps({"step": asdict(step)}), flush=True)
        else:
            mark = "ok  " if step.done else "wait"
            took = f" ({step.seconds:.1f}s)" if step.done else ""
            console.print(f"{mark} {step.node} {step.step}: {step.detail}{took}", highlight=False)

    try:
        await roll(store, spec, the_plan.order, report, timeouts, SessionReplicas.of(spec))
    except GateFailed as exc:
        if as_json:
            print(json.dumps({"failed": str(exc)}), flush=True)
        else:
            print(f"hakeeper upgrade: stopped: {exc}", file=sys.stderr)
        return 1
    after = await plan(store, spec)
    if as_json:
        print(json.dumps({"done": _plan_json(after)}), flush=True)
    else:
        console.print(f"done: every node upgraded; Raft peer wire now {after.cluster_wire}")
    return 0


def _plan_json(p: UpgradePlan) -> dict[str, object]:
    return {
        "order": list(p.order),
        "cluster_raft_wire": p.cluster_wire,
        "problems": list(p.problems),
        "nodes": [
            {
                "node": n.node,
                "online": n.online,
                "controller": n.controller,
                "standby": n.standby,
                "release": n.release,
                "raft_wire": [n.raft_wire.oldest, n.raft_wire.newest] if n.raft_wire else None,
            }
            for n in p.nodes
        ],
    }


def _show_plan(p: UpgradePlan, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"plan": _plan_json(p)}), flush=True)
        return
    table = Table(title="rolling upgrade plan", title_justify="left")
    for column in ("order", "node", "state", "release", "raft peer wire"):
        table.add_column(column)
    rows = {n.node: n for n in p.nodes}
    for i, name in enumerate(p.order, 1):
        n = rows[name]
        state = ("online" if n.online else "OFFLINE") + (" standby" if n.standby else "")
        state += " (controller: last)" if n.controller else ""
        release = n.release or ("before versions" if n.online else "-")
        wire = str(n.raft_wire or "1") if n.online else "-"
        table.add_row(str(i), name, state, release, wire)
    console.print(table)
    console.print(
        f"cluster Raft peer wire: {p.cluster_wire or 1} (the newest every member speaks)",
        highlight=False,
    )
    console.print(
        "each node: drain (standby, its resources move) -> you stop, install, start it -> "
        "rejoined and caught up -> online -> its session-store replicas in sync",
        highlight=False,
    )
    for problem in p.problems:
        console.print(f"[red]cannot start:[/red] {problem}", highlight=False)
