"""`hakeeper config apply FILE`: validate a new cluster file, show its plan, then store it.

The running cluster is untouched until the last step: a file that does not load, renames the
cluster or switches the coordination backend exits 2 with nothing written. Otherwise the
command shows the difference to the config in force (the stored ``config`` key, or the
``--config`` file when none was applied yet) and what the scheduler would do with the new
file on the live state, asks (unless ``--yes``), and writes the file's text to ``config``
in a transaction that fails if someone else applied a config meanwhile. The agents pick it up.
"""

from __future__ import annotations

import asyncio
import difflib
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from hakeeper.cli import cluster_client as cc
from hakeeper.cli.cluster_client import ConfigOption
from hakeeper.cli.plan import print_transition
from hakeeper.config import parse, to_spec, warnings
from hakeeper.coord.base import Coordinator
from hakeeper.errors import ConfigError
from hakeeper.fencing.device import redact
from hakeeper.model.cluster import ClusterSpec, FenceDevice
from hakeeper.model.transition import Transition
from hakeeper.policy.scheduler import schedule
from hakeeper.policy.simulate import what_if
from hakeeper.runtime.snapshot import observe_cluster

console = Console(soft_wrap=True)


@dataclass(frozen=True, slots=True)
class ApplyPlan:
    path: Path
    text: str
    spec: ClusterSpec
    diff: tuple[str, ...]
    base_revision: int  # mod_revision of the stored config read; 0 when none was stored
    transition: Transition
    notes: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.diff)


def load_new(path: Path) -> tuple[str, ClusterSpec, list[str]]:
    """The file's exact text (what gets stored) and its validated spec."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    cf = parse(data, source=str(path))
    return text, to_spec(cf), [f"{path}: warning: {w}" for w in warnings(cf)]


def _compatible(current: ClusterSpec, new: ClusterSpec, path: Path) -> list[str]:
    """Refuse what cannot change on a running cluster; note what needs agent restarts."""
    if new.options.name != current.options.name:
        raise ConfigError(
            f"{path}: cluster.name {new.options.name!r} differs from the running cluster's "
            f"{current.options.name!r}; a cluster cannot be renamed by config apply"
        )
    if new.coordination.backend != current.coordination.backend:
        raise ConfigError(
            f"{path}: coordination.backend {new.coordination.backend!r} differs from the "
            f"running cluster's {current.coordination.backend!r}; moving engines needs a restart "
            "of the whole cluster, not config apply"
        )
    peers = {(n.name, n.address, n.raft_port) for n in current.nodes}
    notes = []
    if {(n.name, n.address, n.raft_port) for n in new.nodes} != peers or (
        new.coordination != current.coordination
    ):
        notes.append("nodes or coordination settings change: agents use them only after a restart")
    return notes


async def prepare(
    coord: Coordinator, current: ClusterSpec, current_text: str, path: Path, now: float
) -> ApplyPlan:
    """Everything shown before the question; writes nothing."""
    text, new, notes = load_new(path)
    notes += _compatible(current, new, path)
    return await prepare_text(coord, current, current_text, text, new, notes, path, now)


async def prepare_text(
    coord: Coordinator,
    current: ClusterSpec,
    current_text: str,
    text: str,
    new: ClusterSpec,
    notes: list[str],
    path: Path,
    now: float,
    what_ifs: tuple[str, ...] = (),
) -> ApplyPlan:
    """The plan of storing ``text`` (already validated as ``new``), shown as coming from
    ``path``; the transition is scheduled after each of ``what_ifs`` (`plan --what-if`)."""
    store = cc.store_of(coord, current)
    stored = await store.config_record()
    base_text, base_name = (
        (stored.raw.decode(), "stored config") if stored else (current_text, "current")
    )
    # A fence password written inline (hakeeper check warns about it) is never shown.
    devices = current.fence_devices + new.fence_devices
    diff = tuple(
        _redacted(line, devices)
        for line in difflib.unified_diff(
            base_text.splitlines(), text.splitlines(), base_name, str(path), lineterm=""
        )
    )
    snapshot = await observe_cluster(store, new, now)
    state = snapshot.observed.state
    for question in what_ifs:
        state = what_if(state, question, tuple(n.name for n in new.nodes))
    tr = schedule(snapshot.spec, state)
    base_revision = stored.revision if stored else 0
    return ApplyPlan(path, text, new, diff, base_revision, tr, tuple(notes))


def _redacted(line: str, devices: tuple[FenceDevice, ...]) -> str:
    for device in devices:
        line = redact(line, {key: str(value) for key, value in device.params.items()})
    return line


async def write(coord: Coordinator, current: ClusterSpec, plan: ApplyPlan) -> bool:
    """Store the text unless another config was applied since `prepare` read it."""
    return await cc.store_of(coord, current).publish_config(plan.text, plan.base_revision)


def show(plan: ApplyPlan) -> None:
    for note in plan.notes:
        console.print(f"[yellow]{note}[/]", highlight=False)
    if not plan.changed:
        return
    for line in plan.diff:
        colour = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
        # Escaped: a TOML table header ("[nodes.n4]") is not rich markup.
        console.print(f"[{colour}]{escape(line)}[/]", highlight=False, markup=True)
    console.print("[bold]what the scheduler will do with it[/]")
    print_transition(plan.transition)


async def apply_config(
    coord: Coordinator,
    current: ClusterSpec,
    current_text: str,
    path: Path,
    ask: Callable[[], bool],
    now: float,
) -> int:
    plan = await prepare(coord, current, current_text, path, now)
    show(plan)
    if not plan.changed:
        console.print(f"{path}: same as the config in force; nothing to apply")
        return 0
    # The question blocks on the terminal: off the event loop, so the client stays served.
    if not await asyncio.to_thread(ask):
        console.print("not applied")
        return 1
    if not await write(coord, current, plan):
        raise ConfigError(
            "another config was applied while this one was being reviewed; nothing written. "
            "Run config apply again to see the new difference"
        )
    console.print(f"[green]applied[/] {path}: the agents load it next", highlight=False)
    return 0


def apply(
    path: Annotated[Path, typer.Argument(help="The new cluster file (TOML).")],
    config: ConfigOption = cc.DEFAULT_CONFIG,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
) -> None:
    """Validate FILE, show the change and its plan on the live cluster, then apply it."""
    try:
        load_new(path)  # bad input fails here, before the cluster is even contacted
        current_text = config.read_text(encoding="utf-8")
    except ConfigError as exc:
        typer.echo(f"hakeeper config apply: {exc}", err=True)
        raise typer.Exit(2) from exc
    except OSError as exc:
        typer.echo(f"hakeeper config apply: {config}: cannot read ({exc.strerror})", err=True)
        raise typer.Exit(2) from exc

    def ask() -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise ConfigError("no terminal to confirm on: pass --yes to apply; nothing written")
        return typer.confirm("apply this config to the running cluster?", default=False)

    async def body(coord: Coordinator, spec: ClusterSpec) -> int:
        return await apply_config(coord, spec, current_text, path, ask, cc.wall())

    cc.run_command("config apply", config, body, in_force=False)
