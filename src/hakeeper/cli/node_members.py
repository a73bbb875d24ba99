"""`hakeeper node add|remove|replace`: grow, shrink and replace nodes of a running cluster.

Each command shows what changes first — the cluster file's difference and what the scheduler
would do once the change is made (`plan --what-if "node N added"`, `"node N removed"`) —
asks (unless ``--yes``), then runs the change's steps (`hakeeper.runtime.node_changes`).
The change is recorded in the cluster as it goes: if this command is interrupted, running
it again resumes where it stopped; ``node remove N`` while the add of N is in flight and N
never joined undoes that add. The local cluster file (``--config``) is rewritten with
the config in force after each config step, so that it can be copied to the new node.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hakeeper.api import config_actions, hints
from hakeeper.cli import cluster_client as cc
from hakeeper.cli import config_apply
from hakeeper.cli.cluster_client import Bounded, ConfigOption
from hakeeper.config import load_spec
from hakeeper.config.file_modes import open_private
from hakeeper.config.loader import spec_from_text
from hakeeper.coord.base import Coordinator, MembershipChanges
from hakeeper.coord.raft_peers import member_address
from hakeeper.errors import ConfigError, EngineMismatch, HakeeperError
from hakeeper.model.address import HostPort, split_address
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.node_change import NodeChange, NodeChangeKind, NodeChangeStep
from hakeeper.runtime.node_changes import ChangeLimits, NodeChanges
from hakeeper.runtime.node_config import check_node_name, with_node, without_node

console = Console(soft_wrap=True)

YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Change without asking.")]
TimeoutOption = Annotated[
    float,
    typer.Option("--timeout", min=1.0, help="Seconds each waiting step may take (drain, join)."),
]
ConfirmOffOption = Annotated[
    bool,
    typer.Option(
        "--confirm-off",
        help="The leaving node is down and you checked by hand that it is off (rule 2).",
    ),
]
AddressOption = Annotated[
    str,
    typer.Option(
        "--address",
        help="The new node's address, HOST or HOST:RAFT_PORT (default port: the cluster's).",
    ),
]


def raft_address(spec: ClusterSpec, text: str) -> HostPort:
    """HOST[:PORT] as typed; without a port, the Raft port the cluster's nodes use."""
    has_port = text.count(":") == 1 or (text.startswith("[") and "]:" in text)
    if not has_port:
        port = spec.nodes[0].raft_port if spec.nodes else 7480
        text = f"[{text}]:{port}" if ":" in text and not text.startswith("[") else f"{text}:{port}"
    try:
        return split_address(text)
    except ValueError as exc:
        raise ConfigError(f"--address: {exc}") from None


def _members(coord: Coordinator) -> MembershipChanges | None:
    inner = coord.inner if isinstance(coord, Bounded) else coord
    return inner if isinstance(inner, MembershipChanges) else None


def write_local(config: Path, text: str) -> None:
    """Replace the local cluster file's text at once (a reader never sees half of it),
    owner-only as `hakeeper init` writes it: it names the secret file and fence devices."""
    try:
        if config.read_text(encoding="utf-8") == text:
            return
        scratch = config.with_name(config.name + ".new")
        fd = open_private(scratch, os.O_WRONLY | os.O_TRUNC)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(scratch, config)
    except OSError as exc:
        console.print(f"[yellow]note[/]: {config} not rewritten ({exc.strerror})")
        return
    console.print(f"{config}: now the config in force", highlight=False)


async def change_nodes(
    coord: Coordinator,
    spec: ClusterSpec,
    config: Path,
    local_text: str,
    asked: tuple[NodeChangeKind, str, str],
    wanted: Callable[[ClusterSpec], NodeChange],
    *,
    yes: bool,
    confirm_off: bool,
    timeout: float,
) -> int:
    """Show, ask, then run the change ``wanted`` makes of the config in force; or resume
    the change a crashed run left when it is the one ``asked`` (kind, node, old node),
    without asking again: the config in force may already show it made."""
    store = cc.store_of(coord, spec)
    runner = NodeChanges(
        store,
        _members(coord),
        local_text,
        say=lambda line: console.print(line, highlight=False),
        on_config=lambda text: write_local(config, text),
        limits=ChangeLimits(drain=timeout, join=timeout),
        confirm_off=confirm_off,
    )
    current = await runner.in_flight()
    if current is not None and current.kind == "add" and asked == ("remove", current.node, ""):
        return await _undo(runner, current, yes)
    resuming = current is not None and (current.kind, current.node, current.old) == asked
    change = current if current is not None and resuming else wanted(spec)
    if not resuming and not await _review(coord, runner, change, config, yes):
        console.print("not changed")
        return 1
    change = await runner.begin(change)
    if "add_voter" in change.steps:
        argv = ["hakeeper", "agent", "--config", str(config), "--node", change.node, "--join"]
        console.print(f"on {change.node}, with this cluster file copied there: "
                      f"[bold]{shlex.join(argv)}[/]", highlight=False)  # fmt: skip
    await runner.run(change)
    return 0


async def _undo(runner: NodeChanges, change: NodeChange, yes: bool) -> int:
    console.print(
        f"{change.describe()} is in flight (step {change.step}): removing {change.node} "
        "undoes it if it never joined",
        highlight=False,
    )
    if not yes:
        if not sys.stdin.isatty():
            raise ConfigError(f"no terminal to confirm on: pass --yes to undo add {change.node}")
        asked = f"undo add {change.node} in the running cluster?"
        if not await asyncio.to_thread(typer.confirm, asked, default=False):
            console.print("not changed")
            return 1
    await runner.undo_add(change)
    return 0


async def _review(
    coord: Coordinator, runner: NodeChanges, change: NodeChange, config: Path, yes: bool
) -> bool:
    in_force = await runner.config_in_force()
    after, during, questions = in_force.text, in_force.text, []
    if change.leaving:
        after = without_node(after, change.leaving)
        questions.append(f"node {change.leaving} removed")
    if change.kind != "remove":
        where = split_address(change.address)
        after, during = with_node(after, change.node, where), with_node(during, change.node, where)
        questions.append(f"node {change.node} added")
    # Validated first: a node that other tables still name makes the smaller file fail here,
    # before anything changes.
    spec_from_text(after, f"the cluster file after {change.describe()}")
    # The leaving node is drained while the file still names it: plan on the file that has
    # both nodes, so that the drain's moves and the new node's placements both show.
    both = spec_from_text(during, "the cluster file during the change")
    plan = await config_actions.prepare_text(
        coord, both, in_force.text, after, both, [], str(config), cc.wall(), tuple(questions)
    )
    config_apply.show(plan)
    if yes:
        return True
    if not sys.stdin.isatty():
        raise ConfigError(f"no terminal to confirm on: pass --yes to {change.describe()}")
    return await asyncio.to_thread(
        typer.confirm, f"{change.describe()} in the running cluster?", default=False
    )


def _run(
    name: str, config: Path, kind: NodeChangeKind, node: str, address: str, old: str,
    yes: bool, confirm_off: bool, timeout: float,
) -> None:  # fmt: skip
    def wanted(spec: ClusterSpec) -> NodeChange:
        check_node_name(node)
        leaving = node if kind == "remove" else old
        me = spec.node(leaving) if leaving else None
        if leaving and me is None:
            raise ConfigError(f"{leaving} is not a node of the cluster in force")
        leaving_address = member_address(me) if me is not None else ""
        if kind == "remove":
            return NodeChange(kind, node, leaving_address, "check_fenced", time.time())
        if spec.node(node) is not None:
            raise ConfigError(f"{node} is a node of the cluster already")
        if not address:
            raise ConfigError(f"--address is needed to {name} {node}")
        where = str(raft_address(spec, address))
        first: NodeChangeStep = "configure" if kind == "add" else "check_fenced"
        return NodeChange(kind, node, where, first, time.time(), old, leaving_address)

    try:
        local_text = config.read_text(encoding="utf-8")
    except OSError as exc:
        typer.echo(f"hakeeper node {name}: {config}: cannot read ({exc.strerror})", err=True)
        raise typer.Exit(2) from exc

    async def body(coord: Coordinator, spec: ClusterSpec) -> int:
        return await change_nodes(
            coord, spec, config, local_text, (kind, node, old), wanted,
            yes=yes, confirm_off=confirm_off, timeout=timeout,
        )  # fmt: skip

    leaving = node if kind == "remove" else ""
    hints.use_config(config)
    try:
        code = asyncio.run(_connect_and_run(load_spec(config), local_text, body, leaving))
    except KeyboardInterrupt:
        code = 130
    except HakeeperError as exc:
        typer.echo(f"hakeeper node {name}: {cc.describe(exc)}", err=True)
        raise typer.Exit(2) from exc
    raise typer.Exit(code)


async def _connect_and_run(spec: ClusterSpec, text: str, body: cc.Body, leaving: str) -> int:
    """`cc.run_command`'s connect-then-run, with one more try for ``node remove N``: the file
    a ``node add N`` left names N, and when N never joined no voter list the group committed
    names it, so a client on that file is refused; connecting without N reaches the voters,
    and the command then undoes the add."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            coord = await stack.enter_async_context(cc.connected(spec))
        except EngineMismatch:
            if not leaving or spec.node(leaving) is None:
                raise
            others = spec_from_text(
                without_node(text, leaving), f"the cluster file without {leaving}"
            )
            coord = await stack.enter_async_context(cc.connected(others))
        return await body(coord, await cc.spec_in_force(coord, spec))


def add(
    node: Annotated[str, typer.Argument(help="The new node's name.")],
    address: AddressOption,
    config: ConfigOption = cc.DEFAULT_CONFIG,
    yes: YesOption = False,
    timeout: TimeoutOption = 900.0,
) -> None:
    """Add NODE: the cluster file gains it, its daemon (`agent --join`) joins, it votes."""
    _run("add", config, "add", node, address, "", yes, False, timeout)


def remove(
    node: Annotated[str, typer.Argument(help="The node to remove.")],
    config: ConfigOption = cc.DEFAULT_CONFIG,
    yes: YesOption = False,
    confirm_off: ConfirmOffOption = False,
    timeout: TimeoutOption = 300.0,
) -> None:
    """Remove NODE: move its resources away, retire it from the group, drop it from the file."""
    _run("remove", config, "remove", node, "", "", yes, confirm_off, timeout)


def replace(
    old: Annotated[str, typer.Argument(help="The node to retire (fenced, or --confirm-off).")],
    new: Annotated[str, typer.Argument(help="The new node's name.")],
    address: AddressOption,
    config: ConfigOption = cc.DEFAULT_CONFIG,
    yes: YesOption = False,
    confirm_off: ConfirmOffOption = False,
    timeout: TimeoutOption = 900.0,
) -> None:
    """Replace OLD by NEW: retire OLD (fenced, removed), then add NEW with a fresh state dir."""
    if old == new:
        typer.echo(
            "hakeeper node replace: the new node needs a new name: a retired node's "
            "identity never comes back",
            err=True,
        )
        raise typer.Exit(2)
    _run("replace", config, "replace", new, address, old, yes, confirm_off, timeout)
