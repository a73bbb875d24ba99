"""`hakeeper plan`: the dry run (Pacemaker's crm_simulate) — what the scheduler would do.

    hakeeper plan cluster.toml --state state.json
    hakeeper plan cluster.toml --state state.json --what-if "node n1 down"
    hakeeper plan cluster.toml --dot | dot -Tsvg > plan.svg

Without ``--state`` the snapshot is a fresh cluster: every node online, nothing running.
Each ``--what-if`` is applied in order before scheduling. Bad input exits with status 2.

Through ``hakeeper --url URL plan [--what-if ...]`` the API computes the plan from the
running cluster (as ``--live`` does) with the same code (`hakeeper.runtime.live_plan`), and
it is printed the same way.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any, NoReturn
from urllib.parse import quote

import typer
from rich.console import Console
from rich.table import Table

from hakeeper.api import hints
from hakeeper.cli import cluster_client, remote
from hakeeper.config import load, to_spec
from hakeeper.errors import ConfigError, CoordError, HakeeperError
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.state import ClusterState, NodeState, state_from_dict
from hakeeper.model.transition import Transition
from hakeeper.policy.simulate import questions
from hakeeper.runtime.live_plan import Plan, live_plan, plan_from

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
    print_transition_doc(tr.to_dict())


def print_transition_doc(tr: dict[str, Any]) -> None:
    """The transition's table from its document (`Transition.to_dict`): a plan computed
    here and one the API sent print alike."""
    if not tr["actions"]:
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
        for action in tr["actions"]:
            colour = colours.get(action["kind"], "cyan")
            needs = ",".join(str(n) for n in action["needs"]) or "—"
            table.add_row(
                str(action["id"]), f"[{colour}]{action['action']}[/]", needs, action["reason"]
            )
        console.print(table)
    if tr["decisions"]:
        console.print("[bold]decisions[/]")
        for d in tr["decisions"]:
            style = "red" if d["kind"] in ("blocked", "no-quorum", "cannot-run") else "dim"
            console.print(f"  [{style}]{d['kind']:>17}[/]  {d['message']}")
            if d.get("fix"):
                console.print(f"  {'':>17}  clear it with: {hints.hakeeper(*d['fix'])}")


def plan(
    config: Annotated[
        Path | None,
        typer.Argument(help="the cluster file (TOML); not with --url (the cluster's own then)"),
    ] = None,
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
    api = remote.current()
    if api is not None:
        _remote_plan(api, config, state, what or [], dot=dot, as_json=as_json)
    if config is None:
        typer.echo("hakeeper plan: give the cluster file: hakeeper plan CLUSTER.toml", err=True)
        raise typer.Exit(2)
    hints.use_config(config)
    try:
        spec = to_spec(load(config))
        if live:
            done = asyncio.run(_live(spec, what or []))
        else:
            snapshot = (
                read_state(state)
                if state is not None
                else ClusterState(nodes=tuple(NodeState(n.name) for n in spec.nodes))
            )
            done = plan_from(spec, snapshot, what or [])
    except (ConfigError, CoordError) as exc:
        typer.echo(f"hakeeper plan: {exc}", err=True)
        raise typer.Exit(2) from exc
    show(
        done.transition.to_dict(),
        done.transition.to_dot(done.spec.options.name),
        what or [],
        dot=dot,
        as_json=as_json,
    )


def show(tr: dict[str, Any], dot_text: str, what: list[str], *, dot: bool, as_json: bool) -> None:
    if dot:
        typer.echo(dot_text, nl=False)
    elif as_json:
        typer.echo(json.dumps(tr, indent=2))
    else:
        for question in what:
            console.print(f"[bold]what if[/] {question}")
        print_transition_doc(tr)


def _remote_plan(
    api: remote.Remote,
    config: Path | None,
    state: Path | None,
    what: list[str],
    *,
    dot: bool,
    as_json: bool,
) -> NoReturn:
    """``plan`` through the API: always from the running cluster (as ``--live``)."""
    if config is not None or state is not None:
        typer.echo(
            "hakeeper plan: through --url the plan starts from the running cluster and its "
            "config in force; leave out the cluster file and --state "
            "(hakeeper --url URL plan --what-if QUESTION)",
            err=True,
        )
        raise typer.Exit(2)
    query = "&".join(f"what_if={quote(q, safe='')}" for q in what)
    try:
        answer = remote.answer(api, remote.Call("GET", "/v1/plan" + (f"?{query}" if query else "")))
    except HakeeperError as exc:
        typer.echo(f"hakeeper plan: {cluster_client.describe(exc)}", err=True)
        raise typer.Exit(2) from exc
    show(answer["transition"], answer["dot"], what, dot=dot, as_json=as_json)
    raise typer.Exit(0)


plan.__doc__ = (
    (plan.__doc__ or "") + "\n\nWhat-if questions:\n\n" + questions().replace("\n", "\n\n")
)


async def _live(spec: ClusterSpec, what: list[str]) -> Plan:
    """The plan from the config the cluster runs (with run-time overrides) and its state."""
    async with cluster_client.connected(spec) as coord:
        in_force = await cluster_client.spec_in_force(coord, spec)
        store = cluster_client.store_of(coord, in_force)
        return await live_plan(store, in_force, cluster_client.wall(), what)
