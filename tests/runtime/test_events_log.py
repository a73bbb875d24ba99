"""The event log in the key space: order, follow, trim."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from hakeeper.coord.base import MAX_TXN_OPS
from hakeeper.model.events import ControllerElected, Event, NodeJoined, NodeLost
from hakeeper.runtime.events_log import EventLog
from hakeeper.runtime.keys import KeySpace
from tests.fakes import LocalCoordinator

KEYS = KeySpace("c1")


async def test_events_read_back_in_time_order_across_writers() -> None:
    coord = LocalCoordinator()
    a, b = EventLog(coord, KEYS, "n1"), EventLog(coord, KEYS, "n2")
    await b.append(NodeJoined(ts=20.0, node="n2"))
    await a.append(NodeJoined(ts=10.0, node="n1"))
    await a.append(NodeLost(ts=30.0, node="n2"))
    assert [e.ts for e in await a.read()] == [10.0, 20.0, 30.0]


async def test_two_events_at_the_same_instant_are_both_kept() -> None:
    coord = LocalCoordinator()
    log = EventLog(coord, KEYS, "n1")
    await log.append(NodeJoined(ts=5.0, node="n1"))
    await log.append(NodeJoined(ts=5.0, node="n2"))
    assert len(await log.read()) == 2


async def test_follow_yields_new_events() -> None:
    coord = LocalCoordinator()
    log = EventLog(coord, KEYS, "n1")
    seen: list[Event] = []

    async def follow() -> None:
        async with contextlib.aclosing(log.follow()) as events:
            async for _, event in events:
                seen.append(event)
                return

    task = asyncio.create_task(follow())
    await asyncio.sleep(0)
    await log.append(ControllerElected(ts=1.0, node="n1", term=7))
    await asyncio.wait_for(task, 5)
    assert seen == [ControllerElected(ts=1.0, node="n1", term=7)]


async def test_trim_drops_old_and_excess_events() -> None:
    coord = LocalCoordinator()
    log = EventLog(coord, KEYS, "n1")
    for ts in (100.0, 200.0, 300.0, 400.0, 500.0):
        await log.append(NodeJoined(ts=ts, node="n1"))
    assert await log.trim(now=500.0, max_age=250.0, max_count=10) == 2
    assert await log.trim(now=500.0, max_age=1e9, max_count=2) == 1
    assert [e.ts for e in await log.read()] == [400.0, 500.0]


async def test_trim_of_more_events_than_one_txn_holds_deletes_them_all() -> None:
    coord = LocalCoordinator()
    log = EventLog(coord, KEYS, "n1")
    for ts in range(MAX_TXN_OPS * 2 + 5):
        await log.append(NodeJoined(ts=float(ts), node="n1"))
    assert await log.trim(now=1e6, max_age=10.0, max_count=10**6) == MAX_TXN_OPS * 2 + 5
    assert await log.read() == []


async def test_follow_reports_a_trim_as_a_change_without_an_event() -> None:
    coord = LocalCoordinator()
    log = EventLog(coord, KEYS, "n1")
    await log.append(NodeJoined(ts=100.0, node="n1"))
    _, after = await log.read_at()
    await log.trim(now=500.0, max_age=1.0, max_count=10)
    async with contextlib.aclosing(log.follow(after + 1)) as changes:
        revision, event = await asyncio.wait_for(anext(changes), 5)
    assert event is None
    assert revision > after


#: Values no release of this one's reads: bytes that are not UTF-8, JSON that is not an
#: object, and a kind a newer release might add (during a rolling upgrade).
REFUSED = (b"\xff\xfe", b"[1, 2]", b'{"kind": "node.teleported", "ts": 1.0}')


async def log_with_refused_events(coord: LocalCoordinator) -> EventLog:
    log = EventLog(coord, KEYS, "n1")
    await log.append(NodeJoined(ts=10.0, node="n1"))
    for number, value in enumerate(REFUSED):
        await coord.put(f"{KEYS.events}{20 + number:016d}-foreign-0", value)
    await log.append(NodeLost(ts=40.0, node="n1"))
    return log


async def test_a_read_leaves_out_events_it_cannot_read() -> None:
    log = await log_with_refused_events(LocalCoordinator())
    assert [type(e) for e in await log.read()] == [NodeJoined, NodeLost]
    assert [type(e) for _, e in (await log.read_since(0))[0]] == [NodeJoined, NodeLost]


async def test_follow_reports_an_event_it_cannot_read_as_a_change_without_an_event() -> None:
    coord = LocalCoordinator()
    log = EventLog(coord, KEYS, "n1")
    after = await coord.revision()
    await log_with_refused_events(coord)
    found: list[Event | None] = []
    async with contextlib.aclosing(log.follow(after + 1)) as changes:
        for _ in range(2 + len(REFUSED)):
            found.append((await asyncio.wait_for(anext(changes), 5))[1])
    assert [type(e) for e in found] == [NodeJoined, *[type(None)] * len(REFUSED), NodeLost]


async def test_an_event_it_cannot_read_is_logged_once_not_at_every_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = await log_with_refused_events(LocalCoordinator())
    for _ in range(3):
        await log.read()
    assert len([r for r in caplog.records if "event=record_refused" in r.message]) == len(REFUSED)
