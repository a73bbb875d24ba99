"""`hakeeper plan`: the dry run (Pacemaker's crm_simulate) — what the scheduler would do.

    hakeeper plan cluster.toml --state state.json
    hakeeper plan cluster.toml --state state.json --what-if "node n1 down"
    hakeeper plan cluster.toml --dot | dot -Tsvg > plan.svg

Without ``--state`` the snapshot is a fresh cluster: every node online, nothing running.
Each ``--what-if`` is applied in order before scheduling. Bad input exits with status 2.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hakeeper.cli import cluster_client
from hakeeper.config import load, to_spec
from hakeeper.errors import ConfigError, CoordError
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.state import ClusterState, NodeState, state_from_dict
from hakeeper.model.transition import Transition
from hakeeper.policy.scheduler import schedule
from hakeeper.policy.simulate import questions, spec_if, what_if
from hakeeper.runtime.snapshot import observe_cluster

console = Console(soft_wrap=True)


def read_state(path: Path) -> ClusterState:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from exc
    return state_from_dict(data, source=str(path))


def print_transition(tr: Transition) -> None:
    if tr.empty:
        console.print("[green]nothing to do[/]: every resource is where it should be")
    else:
        table = Table(title="transition", title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("action")
        table.add_column("after", justify="right")
        table.add_column("why")
        colours = {
            "fence": "red",
            "stop": "yellow",
            "retract": "yellow",
            "demote": "yellow",
            "start": "green",
            "prune": "dim",
        }
        for i, action in enumerate(tr.actions):
            colour = colours.get(action.kind, "cyan")
            needs = ",".join(str(n) for n in tr.needs(i)) or "—"
            table.add_row(str(i), f"[{colour}]{action.key}[/]", needs, action.reason)
        console.print(table)
    if tr.decisions:
        console.print("[bold]decisions[/]")
        for d in tr.decisions:
            style = "red" if d.kind in ("blocked", "no-quorum", "cannot-run") else "dim"
            console.print(f"  [{style}]{d.kind:>17}[/]  {d.message}")


def plan(
    config: Annotated[Path, typer.Argument(help="the cluster file (TOML)")],
    state: Annotated[
        Path | None,
        typer.Option("--state", "-s", help="observed state snapshot (JSON); default: fresh"),
    ] = None,
    what: Annotated[
        list[str] | None,
        typer.Option("--what-if", "-w", help='an event first, e.g. "node n1 down" (repeatable)'),
    ] = None,
    dot: Annotated[bool, typer.Option("--dot", help="print Graphviz instead of a table")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the transition as JSON")] = False,
    live: Annotated[
        bool,
        typer.Option("--live", help="start from the running cluster's state and config in force"),
    ] = False,
) -> None:
    """Show what the scheduler would do from a config and an observed state (a dry run)."""
    try:
        spec = to_spec(load(config))
        if live:
            spec, snapshot = asyncio.run(_live(spec))
        elif state is not None:
            snapshot = read_state(state)
        else:
            snapshot = ClusterState(nodes=tuple(NodeState(n.name) for n in spec.nodes))
        for question in what or []:
            spec = spec_if(spec, question)
            names = tuple(n.name for n in spec.nodes)
            snapshot = what_if(snapshot, question, names)
        tr = schedule(spec, snapshot)
    except (ConfigError, CoordError) as exc:
        typer.echo(f"hakeeper plan: {exc}", err=True)
        raise typer.Exit(2) from exc
    if dot:
        typer.echo(tr.to_dot(spec.options.name), nl=False)
    elif as_json:
        typer.echo(json.dumps(tr.to_dict(), indent=2))
    else:
        for question in what or []:
            console.print(f"[bold]what if[/] {question}")
        print_transition(tr)


plan.__doc__ = (
    (plan.__doc__ or "") + "\n\nWhat-if questions:\n\n" + questions().replace("\n", "\n\n")
)


async def _live(spec: ClusterSpec) -> tuple[ClusterSpec, ClusterState]:
    """The config the cluster runs (with run-time overrides) and its observed state."""
    async with cluster_client.connected(spec) as coord:
        in_force = await cluster_client.spec_in_force(coord, spec)
        store = cluster_client.store_of(coord, in_force)
        snapshot = await observe_cluster(store, in_force, cluster_client.wall())
    return snapshot.spec, snapshot.observed.state
