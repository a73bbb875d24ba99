"""``hakeeper lab``: a cluster on network-namespace hosts, with faults (root only).

``lab up`` builds the hosts, the switch and (``--client``) a client namespace, and starts an
agent on every node (`hakeeper.lab.netns_lab`); ``lab status`` shows hosts, cables, agents
and who holds the VIP; ``lab exec NODE CMD...`` runs a command inside a host;
``lab fault crash|freeze|thaw|isolate|heal NODE``; ``lab down`` removes everything the lab
made, also after a crash of the lab itself (it reads ``<dir>/lab.json``).
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hakeeper.cli.lab_nemesis import nemesis
from hakeeper.cli.nemesis_report import nemesis_check
from hakeeper.errors import HakeeperError
from hakeeper.lab.netns_lab import HTTP_PORT, NetnsLab

app = typer.Typer(help="A cluster on network-namespace hosts, with faults (root only).")
app.command("nemesis-check")(nemesis_check)
app.command("nemesis")(nemesis)
console = Console(soft_wrap=True)

DEFAULT_DIR = Path("/run/hakeeper-lab")
DirOption = Annotated[Path, typer.Option("--dir", help="Where the lab keeps its state and logs.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


class Profile(StrEnum):
    default = "default"
    fast = "fast"


class Failback(StrEnum):
    auto = "auto"
    manual = "manual"


class Fault(StrEnum):
    crash = "crash"
    freeze = "freeze"
    thaw = "thaw"
    isolate = "isolate"
    heal = "heal"


def _fail(what: str, exc: HakeeperError) -> typer.Exit:
    typer.echo(f"hakeeper lab {what}: {exc}", err=True)
    return typer.Exit(2)


def _load(what: str, folder: Path) -> NetnsLab:
    try:
        return NetnsLab.load(folder)
    except HakeeperError as exc:
        raise _fail(what, exc) from exc


@app.command()
def up(
    nodes: Annotated[int, typer.Option(min=1, max=9, help="Number of cluster nodes.")] = 3,
    client: Annotated[bool, typer.Option("--client/--no-client", help="Add a client host.")] = True,
    profile: Annotated[
        Profile, typer.Option(help="Timing profile of the cluster.")
    ] = Profile.default,
    failback: Annotated[Failback, typer.Option(help="Failback of the VIP to n1.")] = Failback.auto,
    suspect_after: Annotated[
        float | None,
        typer.Option(help="Fence a member silent this many seconds, before its lease expires."),
    ] = None,
    folder: DirOption = DEFAULT_DIR,
) -> None:
    """Build the hosts and the switch, start an agent on every node."""
    try:
        lab = NetnsLab.create(
            folder, nodes=nodes, client=client, profile=profile.value, failback=failback.value,
            suspect_after=suspect_after,
        )  # fmt: skip
    except HakeeperError as exc:
        raise _fail("up", exc) from exc
    console.print(
        f"lab [bold]{lab.layout.prefix}[/] up in {folder}: nodes {', '.join(lab.layout.nodes)}, "
        f"VIP {lab.vip} (http://{lab.vip}:{HTTP_PORT}/ from the client), profile {profile.value}",
        highlight=False,
    )
    console.print(f"try: {exec_hint(lab, folder)}", highlight=False)


def exec_hint(lab: NetnsLab, folder: Path) -> str:
    """A command that fetches the page through the VIP from the client host."""
    where = () if folder == DEFAULT_DIR else ("--dir", str(folder))
    url = f"http://{lab.vip}:{HTTP_PORT}/"
    return shlex.join(["hakeeper", "lab", "exec", *where, "client", "curl", "-s", url])


@app.command()
def status(folder: DirOption = DEFAULT_DIR, as_json: JsonOption = False) -> None:
    """Hosts, cables, agents, processes and who holds the VIP."""
    lab = _load("status", folder)
    try:
        rows = lab.status()
    except HakeeperError as exc:
        raise _fail("status", exc) from exc
    if as_json:
        data = {"prefix": lab.layout.prefix, "vip": lab.vip, "profile": lab.profile,
                "hosts": [dataclasses.asdict(r) for r in rows]}  # fmt: skip
        typer.echo(json.dumps(data, indent=1))
        return
    table = Table(title=f"lab {lab.layout.prefix} — VIP {lab.vip}, profile {lab.profile}")
    for column in ("host", "namespace", "address", "cable", "agent", "processes", "VIP"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r.host, r.namespace, r.address, "up" if r.port_up else "[red]down[/]", r.agent,
            str(r.processes), "[green]holds[/]" if r.holds_vip else "",
        )  # fmt: skip
    console.print(table)


# Everything after HOST is the command, its options included (`lab exec client curl -s URL`):
# options of `lab exec` itself go before HOST.
@app.command(
    name="exec",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
def exec_(
    host: Annotated[str, typer.Argument(help="n1, n2, … or client.")],
    command: Annotated[list[str], typer.Argument(help="The command and its arguments.")],
    folder: DirOption = DEFAULT_DIR,
) -> None:
    """Run a command inside a host's namespace (its exit code is ours)."""
    lab = _load("exec", folder)
    try:
        done = lab.exec(host, command, timeout=3600)
    except HakeeperError as exc:
        raise _fail("exec", exc) from exc
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    raise typer.Exit(done.returncode)


@app.command()
def fault(
    kind: Annotated[Fault, typer.Argument(help="crash | freeze | thaw | isolate | heal")],
    host: Annotated[str, typer.Argument(help="The node (isolate/heal: also client).")],
    folder: DirOption = DEFAULT_DIR,
) -> None:
    """Inject a fault: crash (power cut), freeze/thaw the agent, isolate/heal the cable."""
    lab = _load("fault", folder)
    actions = {
        Fault.crash: lab.crash,
        Fault.freeze: lab.freeze,
        Fault.thaw: lab.thaw,
        Fault.isolate: lab.isolate,
        Fault.heal: lab.heal,
    }
    try:
        actions[kind](host)
    except HakeeperError as exc:
        raise _fail("fault", exc) from exc
    lab.save()
    console.print(f"{kind.value} {host}: done; VIP now on {', '.join(lab.holders()) or 'no node'}")


@app.command()
def down(folder: DirOption = DEFAULT_DIR) -> None:
    """Kill everything in the lab and remove its namespaces (and so its links)."""
    lab = _load("down", folder)
    removed = lab.down()
    console.print(f"removed {len(removed)} namespaces: {' '.join(removed) or '(none left)'}")
