"""`hakeeper events [--follow] [--json] [--since DURATION]`: the cluster's event log.

``--json`` prints one event per line in the log's own form (`hakeeper.model.events.to_json`),
which ``hakeeper availability report --events FILE`` reads back.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hakeeper.cli import cluster_client as cc
from hakeeper.cli.cluster_client import ConfigOption, JsonOption
from hakeeper.coord.base import Coordinator
from hakeeper.errors import Compacted, ConfigError, CoordError
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.durations import parse_duration
from hakeeper.model.events import Event, sort_events, to_dict, to_json

console = Console(soft_wrap=True)
RETRY = 1.0


async def read_events(
    coord: Coordinator, spec: ClusterSpec, *, since: float | None = None, now: float = 0.0
) -> tuple[list[Event], int]:
    """The kept events in time order, and the revision they were read at (to follow from)."""
    events, revision = await cc.store_of(coord, spec).event_log("cli").read_at()
    if since is not None:
        events = [e for e in events if e.ts >= now - since]
    return sort_events(events), revision


async def follow_events(
    coord: Coordinator,
    spec: ClusterSpec,
    after: int,
    emit: Callable[[Event], None],
    *,
    limit: int | None = None,
) -> None:
    """Emit events appended after revision ``after``; survive engine trouble by resuming.

    Each event comes with its revision, so a broken stream resumes exactly where it stopped.
    ``limit`` stops after that many (tests)."""
    log = cc.store_of(coord, spec).event_log("cli")
    start, seen = after + 1, 0
    while limit is None or seen < limit:
        try:
            async with contextlib.aclosing(log.follow(start)) as changes:
                async for revision, event in changes:
                    start = revision + 1
                    if event is None:
                        continue  # trimming
                    emit(event)
                    seen += 1
                    if limit is not None and seen >= limit:
                        return
        except Compacted:
            _warn("events were trimmed while disconnected; following from now")
            start = await log.revision() + 1
        except CoordError as exc:
            _warn(f"{cc.describe(exc)}; retrying")
            await asyncio.sleep(RETRY)


def _warn(text: str) -> None:
    print(f"hakeeper events: {text}", file=sys.stderr, flush=True)


def when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) + f".{int(ts % 1 * 1000):03d}"


def details(event: Event) -> str:
    fields = to_dict(event)
    return " ".join(f"{k}={v}" for k, v in fields.items() if k not in ("kind", "ts"))


def table(events: list[Event]) -> Table:
    out = Table(title=f"{len(events)} events", title_justify="left")
    for col in ("time", "event", "details"):
        out.add_column(col)
    for e in events:
        out.add_row(when(e.ts), _styled(e), details(e))
    return out


def _styled(event: Event) -> str:
    bad = ("node.lost", "resource.failed", "quorum.lost", "failover.started", "alert.failed")
    colour = "red" if event.kind in bad else "green" if event.kind != "node.fenced" else "yellow"
    return f"[{colour}]{event.kind}[/]"


def line(event: Event, as_json: bool) -> str:
    return to_json(event) if as_json else f"{when(event.ts)}  {event.kind:<18} {details(event)}"


def events(
    config: ConfigOption = cc.DEFAULT_CONFIG,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events; Ctrl-C ends.")
    ] = False,
    as_json: JsonOption = False,
    since: Annotated[
        str | None, typer.Option(help="Only events of the last DURATION (e.g. 10m, 2h).")
    ] = None,
) -> None:
    """Print the cluster's event log (JSON lines with --json, as availability reads them)."""
    try:
        window = parse_duration(since, what="--since") if since is not None else None
    except ConfigError as exc:
        typer.echo(f"hakeeper events: {exc}", err=True)
        raise typer.Exit(2) from exc

    def emit(event: Event) -> None:
        if as_json:
            typer.echo(to_json(event))
        else:
            console.print(line(event, False), highlight=False)

    async def body(coord: Coordinator, spec: ClusterSpec) -> int:
        found, revision = await read_events(coord, spec, since=window, now=cc.wall())
        if as_json or follow:
            for event in found:
                emit(event)
        else:
            console.print(table(found))
        if follow:
            await follow_events(coord, spec, revision, emit)
        return 0

    cc.run_command("events", config, body, interrupt_code=0)
