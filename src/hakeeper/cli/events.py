"""`hakeeper events [--follow] [--json] [--since DURATION]`: the cluster's event log.

``--json`` prints one event per line in the log's own form (`hakeeper.model.events.to_json`),
which ``hakeeper availability report --events FILE`` reads back.

Through ``hakeeper --url URL events`` the log is read from the API (``/v1/events``) and
followed on its event stream, reopened from the last revision seen when it breaks
(`hakeeper.cli.remote.stream_messages`); the output is the same.
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
from hakeeper.cli import remote
from hakeeper.cli.cluster_client import ConfigOption, JsonOption
from hakeeper.coord.base import Coordinator
from hakeeper.errors import Compacted, ConfigError, CoordError, HakeeperError, Unreachable
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.durations import parse_duration
from hakeeper.model.events import Event, from_dict, sort_events, to_dict, to_json

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
                        continue  # trimmed, or refused (logged)
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


def _event_of(data: object, revision: int | None) -> Event | None:
    """An event the API sent (its ``to_dict`` and revision); None, with a warning, for one
    this CLI does not know (a newer server's kind)."""
    if not isinstance(data, dict):
        _warn(f"skipped a malformed event at revision {revision}")
        return None
    try:
        return from_dict({k: v for k, v in data.items() if k != "revision"})
    except ConfigError as exc:
        _warn(f"skipped the event at revision {revision}: {exc}")
        return None


async def read_remote_events(
    api: remote.Remote, *, since: float | None = None, now: float = 0.0
) -> tuple[list[Event], int]:
    """What `read_events` reads, from the API: the kept events and the revision to follow
    from."""
    answer = await remote.answer_async(api, remote.Call("GET", "/v1/events?since=0"))
    found = [e for d in answer["events"] if (e := _event_of(d, d.get("revision"))) is not None]
    if since is not None:
        found = [e for e in found if e.ts >= now - since]
    return sort_events(found), int(answer["revision"])


async def follow_remote_events(
    api: remote.Remote,
    after: int,
    emit: Callable[[Event], None],
    *,
    limit: int | None = None,
    retry: float = RETRY,
) -> None:
    """What `follow_events` does, on the API's stream: each event once, in order; a broken
    stream is reopened from the last revision seen. A refusal (401/403) ends it."""
    last, seen = after, 0
    while limit is None or seen < limit:
        try:
            async with contextlib.aclosing(remote.stream_messages(api, last)) as messages:
                async for message in messages:
                    if message.kind != "event" or message.id is None or message.id <= last:
                        continue  # a status, or what was already printed
                    last = message.id
                    event = _event_of(message.data, message.id)
                    if event is None:
                        continue
                    emit(event)
                    seen += 1
                    if limit is not None and seen >= limit:
                        return
            _warn(f"the API ended the stream; reopening from revision {last}")
        except remote.StreamRefused:
            raise
        except Unreachable as exc:
            _warn(f"{exc}; reopening from revision {last}")
        await asyncio.sleep(retry)


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

    api = remote.current()
    if api is not None:
        _remote(api, follow, as_json, window, emit)
    cc.run_command("events", config, body, interrupt_code=0)


def _remote(
    api: remote.Remote,
    follow: bool,
    as_json: bool,
    window: float | None,
    emit: Callable[[Event], None],
) -> None:
    """``events`` through the API: the same lines, then the stream with ``--follow``."""

    async def body() -> None:
        found, revision = await read_remote_events(api, since=window, now=cc.wall())
        if as_json or follow:
            for event in found:
                emit(event)
        else:
            console.print(table(found))
        if follow:
            await follow_remote_events(api, revision, emit)

    try:
        asyncio.run(body())
    except KeyboardInterrupt:
        pass  # Ctrl-C is how --follow ends
    except HakeeperError as exc:
        typer.echo(f"hakeeper events: {cc.describe(exc)}", err=True)
        raise typer.Exit(2) from exc
    raise typer.Exit(0)
