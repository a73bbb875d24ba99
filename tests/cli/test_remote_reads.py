"""``hakeeper --url``: ``events`` (and its follow mode), ``status --watch`` and ``plan``
through a served API print what they print on a cluster host; a broken or silent event
stream is reopened from the last revision seen."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from io import StringIO
from pathlib import Path

import pytest
from aiohttp import web
from rich.console import Console

from hakeeper.cli import remote
from hakeeper.cli.events import follow_remote_events
from hakeeper.cli.main import app
from hakeeper.cli.status import watch_remote_status
from hakeeper.errors import Unreachable
from hakeeper.model.events import Event, NodeJoined, NodeLost, ResourceStarted, to_dict
from hakeeper.runtime.events_log import EventLog
from hakeeper.runtime.store import ClusterStore
from tests.api.conftest import TOKENS, Served, free_port, until_listening
from tests.cli.conftest import KEYS, runs
from tests.cli.remote_support import api as api
from tests.cli.remote_support import back_to_local as back_to_local
from tests.cli.remote_support import cli, runner
from tests.fakes import LocalCoordinator

WAIT = 20.0


async def seed(coord: LocalCoordinator) -> None:
    log = EventLog(coord, KEYS, "n1")
    await log.append(NodeJoined(ts=100.0, node="n1"))
    await log.append(NodeLost(ts=200.0, node="n3"))
    await log.append(ResourceStarted(ts=300.0, resource="vip", node="n2"))


def local(*words: str) -> str:
    result = runner.invoke(app, list(words))
    assert result.exit_code == 0, result.output
    return result.stdout


def as_reader(api: Served) -> remote.Remote:
    return remote.Remote(api.url, TOKENS["reader"])


async def test_events_json_through_the_api_are_the_local_lines(
    api: Served, coord: LocalCoordinator, config_file: Path, use_local: None
) -> None:
    await seed(coord)
    through = await cli(api, "events", "--json", token="reader")
    assert through.exit_code == 0, through.output
    assert through.stdout == await asyncio.to_thread(
        local, "events", "--json", "--config", str(config_file)
    )
    assert len(through.stdout.splitlines()) == 3


async def test_events_table_through_the_api_is_the_local_table(
    api: Served, coord: LocalCoordinator, config_file: Path, use_local: None
) -> None:
    await seed(coord)
    through = await cli(api, "events", token="reader")
    assert through.exit_code == 0, through.output
    assert "3 events" in through.stdout
    assert through.stdout == await asyncio.to_thread(local, "events", "--config", str(config_file))


async def test_events_follow_through_the_api_prints_what_comes_after(
    api: Served, coord: LocalCoordinator
) -> None:
    await seed(coord)
    seen: list[Event] = []
    follow = asyncio.create_task(
        follow_remote_events(as_reader(api), coord.state.revision, seen.append, limit=1)
    )
    later = NodeLost(ts=400.0, node="n2")
    async with asyncio.timeout(WAIT):
        while not follow.done():  # appended until the stream is open and delivers it
            await EventLog(coord, KEYS, "n1").append(later)
            await asyncio.wait({follow}, timeout=0.5)
    assert seen == [later]


async def test_a_refused_follow_ends_with_the_api_words(api: Served) -> None:
    with pytest.raises(remote.StreamRefused, match="401"):
        await follow_remote_events(remote.Remote(api.url, "z" * 43), 0, print, limit=1)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def fake_stream(stream: Handler) -> AsyncIterator[str]:
    """A server whose ``/v1/events/stream`` is ``stream``: how a stalling or hostile node
    answers the CLI."""
    app = web.Application()
    app.router.add_get("/v1/events/stream", stream)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await until_listening("127.0.0.1", port, WAIT)
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def flaky_stream(asked: list[str | None]) -> contextlib.AbstractAsyncContextManager[str]:
    """An event stream that sends event 5 then goes silent (first connection), then sends
    events 5 (again) and 6 (second): what a node that stalls and comes back does."""

    async def stream(request: web.Request) -> web.StreamResponse:
        asked.append(request.headers.get("Last-Event-ID"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for revision in (5,) if len(asked) == 1 else (5, 6):
            data = json.dumps(to_dict(NodeLost(ts=float(revision), node="n2")))
            await response.write(f"event: event\nid: {revision}\ndata: {data}\n\n".encode())
        await asyncio.sleep(WAIT)  # silent: the client's read deadline ends it
        return response

    return fake_stream(stream)


async def test_a_silent_stream_is_reopened_from_the_last_revision_seen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(remote, "STREAM_READ_TIMEOUT", 0.5)
    asked: list[str | None] = []
    seen: list[Event] = []
    async with flaky_stream(asked) as url:
        await asyncio.wait_for(
            follow_remote_events(remote.Remote(url, None), 4, seen.append, limit=2, retry=0.1),
            WAIT,
        )
    assert asked == ["4", "5"]
    assert [e.ts for e in seen] == [5.0, 6.0]  # event 5 once, although sent twice


async def read_all(api: remote.Remote) -> None:
    async with contextlib.aclosing(remote.stream_messages(api, 0)) as messages:
        async for _ in messages:
            pass


async def test_an_endless_event_from_a_hostile_node_is_cut_at_the_bound(
    monkeypatch: pytest.MonkeyPatch, api: Served
) -> None:
    monkeypatch.setattr(remote, "MAX_MESSAGE", 64 * 1024)

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: ")
        for _ in range(1024):  # 16 MiB at most, never a line end
            await response.write(b"x" * 16384)
        return response

    async with fake_stream(endless) as url:
        with pytest.raises(Unreachable, match="larger than"):
            await read_all(remote.Remote(url, None))
    # The CLI goes on: the real API's stream still delivers.
    out = Console(file=StringIO(), width=160)
    assert await asyncio.wait_for(watch_remote_status(as_reader(api), out, frames=1), WAIT) < 2


async def test_status_watch_through_the_api_draws_the_cluster(
    api: Served, store: ClusterStore
) -> None:
    out = Console(file=StringIO(), width=160)
    code = await asyncio.wait_for(watch_remote_status(as_reader(api), out, frames=1), WAIT)
    assert code in (0, 1)
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert "cluster c1" in text
    assert "n3" in text


async def test_status_watch_through_the_api_redraws_after_a_change(
    api: Served, store: ClusterStore
) -> None:
    out = Console(file=StringIO(), width=160)
    watch = asyncio.create_task(watch_remote_status(as_reader(api), out, frames=2))
    await asyncio.sleep(0.2)
    await runs(store, "vip", "n2")
    assert await asyncio.wait_for(watch, WAIT) in (0, 1)
    assert "vip" in out.file.getvalue()  # type: ignore[attr-defined]


async def test_status_watch_with_a_refused_token_ends_with_status_2(api: Served) -> None:
    out = Console(file=StringIO(), width=160)
    code = await watch_remote_status(remote.Remote(api.url, "z" * 43), out, frames=1)
    assert code == 2
    assert "401" in out.file.getvalue()  # type: ignore[attr-defined]


@pytest.mark.parametrize("form", [[], ["--json"], ["--dot"]])
async def test_plan_what_if_through_the_api_is_the_local_live_plan(
    api: Served,
    store: ClusterStore,
    config_file: Path,
    use_local: None,
    form: list[str],
) -> None:
    await runs(store, "vip", "n1")
    question = ["--what-if", "node n1 down"]
    through = await cli(api, "plan", *question, *form, token="reader")
    assert through.exit_code == 0, through.output
    here = await asyncio.to_thread(local, "plan", str(config_file), "--live", *question, *form)
    assert through.stdout == here
    assert "n1" in here


async def test_plan_through_the_api_reports_a_bad_question(api: Served) -> None:
    result = await cli(api, "plan", "--what-if", "the moon falls", token="reader")
    assert result.exit_code == 2
    assert "400" in result.output


async def test_plan_through_the_api_refuses_a_local_file(api: Served, config_file: Path) -> None:
    result = await cli(api, "plan", str(config_file), token="reader")
    assert result.exit_code == 2
    assert "leave out the cluster file" in result.output


async def test_status_plan_through_the_api_is_the_local_status_plan(
    api: Served, store: ClusterStore, config_file: Path, use_local: None
) -> None:
    await runs(store, "vip", "n2")
    through = await cli(api, "status", "--plan", token="reader")
    here = await asyncio.to_thread(
        runner.invoke, app, ["status", "--plan", "--config", str(config_file)]
    )
    assert through.exit_code == here.exit_code
    assert through.stdout == here.stdout
    assert "vip" in here.stdout
