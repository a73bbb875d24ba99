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
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from hakeeper.api import config_actions
from hakeeper.api.config_actions import ApplyPlan, load_new, write
from hakeeper.cli import cluster_client as cc
from hakeeper.cli import remote
from hakeeper.cli.cluster_client import ConfigOption
from hakeeper.cli.plan import print_transition
from hakeeper.coord.base import Coordinator
from hakeeper.errors import ConfigError
from hakeeper.model.cluster import ClusterSpec

console = Console(soft_wrap=True)


def read_new(path: Path) -> str:
    """The file's exact text: what gets stored."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc


async def prepare(
    coord: Coordinator, current: ClusterSpec, current_text: str, path: Path, now: float
) -> ApplyPlan:
    """The plan of the file at ``path`` (the body shared with the API, on its text)."""
    return await config_actions.prepare(
        coord, current, current_text, read_new(path), str(path), now
    )


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
    if remote.current() is not None:
        _apply_through_api(path, yes)
    try:
        load_new(read_new(path), str(path))  # bad input fails here, before any contact
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


def _apply_through_api(path: Path, yes: bool) -> None:
    """``--url``: the file's text goes to ``POST /v1/config/apply`` (no question asked there,
    so ``--yes`` is required; ``POST /v1/config/plan`` shows the difference first)."""
    try:
        if not yes:
            raise ConfigError(
                "through --url there is no question to answer: review the change with "
                "POST /v1/config/plan (docs/api.md), then pass --yes; nothing written"
            )
        text = read_new(path)
        load_new(text, str(path))
    except ConfigError as exc:
        typer.echo(f"hakeeper config apply: {exc}", err=True)
        raise typer.Exit(2) from exc
    cc.run_through_api("config apply", remote.Call("POST", "/v1/config/apply", {"text": text}))
