"""``hakeeper lab nemesis``: a seeded mixed-fault run of the whole stack (root only).

Builds a three-node namespace lab with a client and the nemesis's stack
(`hakeeper.lab.nemesis_stack`) in ``--dir``, runs the plan of ``--seed`` for ``--duration``
(`hakeeper.lab.nemesis_run`), tears the lab down whatever happens (Ctrl-C included), keeps the
run's directory (``<dir>/run``: history, singleton records, event log, HTML report) and the
agents' logs (``<dir>/lab``), then prints the report (`hakeeper.cli.nemesis_report`). Exit 0
only when every invariant counted 0 violations. SIGTERM and SIGHUP end it like Ctrl-C, lab
removed, with exit code 128 + the signal's number.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from hakeeper.cli.nemesis_report import report_run
from hakeeper.errors import ConfigError, HakeeperError
from hakeeper.lab.nemesis_faults import UNAVAILABLE
from hakeeper.lab.nemesis_run import run_nemesis
from hakeeper.lab.nemesis_schedule import TIMINGS
from hakeeper.lab.nemesis_stack import build_stack
from hakeeper.model.durations import parse_duration

console = Console(soft_wrap=True, stderr=True)

DEFAULT_DIR = Path("/var/tmp/hakeeper-nemesis")


@contextlib.contextmanager
def _terminated_like_ctrl_c() -> Iterator[None]:
    """SIGTERM and SIGHUP raise SystemExit, so the run ends through the ``finally`` that
    removes the lab: by default they kill the process on the spot, leaving its namespaces and
    every agent running (and a background run started with ``&`` ignores SIGINT)."""

    def stop(signum: int, _frame: FrameType | None) -> NoReturn:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def nemesis(
    seed: Annotated[
        int, typer.Option(help="Seed of the fault plan (the same seed, the same plan).")
    ],
    duration: Annotated[
        str, typer.Option(help="How long faults are injected, e.g. 2m, 1h.")
    ] = "2m",
    profile: Annotated[str, typer.Option(help="Timing profile: fast or default.")] = "fast",
    pace: Annotated[
        str | None,
        typer.Option(help="Whose hold times and gaps the plan uses (default: --profile's)."),
    ] = None,
    suspect_after: Annotated[
        float | None,
        typer.Option(help="Fence a member silent this many seconds, before its lease expires."),
    ] = None,
    folder: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help=f"Where the lab and the run go (default: a new directory under {DEFAULT_DIR}).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Run seeded mixed faults against VIP, balancer, web clone, session store, singleton."""
    if os.geteuid() != 0:
        typer.echo(
            "hakeeper lab nemesis: the namespace lab needs root (network namespaces, veths, "
            "bridges); run it as root: sudo hakeeper lab nemesis --seed "
            f"{seed} --duration {shlex.quote(duration)}",
            err=True,
        )
        raise typer.Exit(2)
    try:
        seconds = parse_duration(duration, what="--duration")
        for name, value in (("--profile", profile), ("--pace", pace or profile)):
            if value not in TIMINGS:
                raise ConfigError(f"{name} {value!r}: use one of {', '.join(TIMINGS)}")
    except ConfigError as exc:
        typer.echo(f"hakeeper lab nemesis: {exc}", err=True)
        raise typer.Exit(2) from exc
    base = folder if folder is not None else DEFAULT_DIR / time.strftime("%Y%m%d-%H%M%S")
    run_dir = base / "run"
    for kind, why in UNAVAILABLE.items():
        console.print(f"not injected: {kind} ({why})", highlight=False)
    with _terminated_like_ctrl_c():
        try:
            lab = build_stack(base / "lab", run_dir, profile=profile, suspect_after=suspect_after)
        except HakeeperError as exc:
            typer.echo(f"hakeeper lab nemesis: could not build the lab: {exc}", err=True)
            raise typer.Exit(2) from exc
        console.print(f"lab {lab.layout.prefix} built in {base / 'lab'}", highlight=False)
        try:
            result = run_nemesis(
                lab, run_dir, seed=seed, duration=seconds, pace=pace,
                progress=lambda text: console.print(text, highlight=False),
            )  # fmt: skip
        except HakeeperError as exc:
            typer.echo(f"hakeeper lab nemesis: the run failed: {exc}", err=True)
            raise typer.Exit(2) from exc
        finally:
            lab.down()
            console.print(f"lab {lab.layout.prefix} removed; logs kept in {base / 'lab'}")
    for missed in result.missed:
        console.print(f"not injected: {missed}", highlight=False)
    raise typer.Exit(report_run(run_dir, as_json=as_json))
