"""The coordination contract, run unchanged against every backend on real processes.

Each test gets a fresh three-member cluster (real etcd members, or real embedded Raft
members in their own processes) and a client connected to all of them. Timings are never
asserted tightly: a deadline only bounds how long a test may wait for the behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from hakeeper.coord.base import KV, Cmp, Coordinator, Delete, Get, Put, WatchEvent
from hakeeper.errors import CoordError, LeaseExpired, NoQuorum, TTLTooShort, Unreachable
from tests.coord.conftest import EngineCluster

pytestmark = pytest.mark.slow

T = TypeVar("T")


async def eventually(call: Callable[[], Awaitable[T]], deadline: float = 20.0) -> T:
    """Retry ``call`` through engine errors (an election, a reconnect) until it succeeds."""
    loop = asyncio.get_running_loop()
    stop = loop.time() + deadline
    while True:
        try:
            return await call()
        except CoordError:
            if loop.time() > stop:
                raise
            await asyncio.sleep(0.05)


async def create(coord: Coordinator, key: str, value: bytes = b"x") -> None:
    """Write ``key`` once: a retry after an ambiguous failure must not write it again."""
    await coord.txn([Cmp(key, "create_revision", "==", 0)], [Put(key, value)])


async def test_put_get_range_delete(coord: Coordinator) -> None:
    first = await coord.put("/t/a", b"1")
    second = await coord.put("/t/b", b"2")
    await coord.put("/u/c", b"3")

    got = await coord.get("/t/a")
    assert got is not None
    assert (got.value, got.create_revision, got.mod_revision, got.version) == (
        b"1",
        first,
        first,
        1,
    )
    assert [kv.key for kv in await coord.range("/t/")] == ["/t/a", "/t/b"]
    assert second > first
    assert await coord.delete("/t/", prefix=True) == 2
    assert await coord.get("/t/a") is None
    assert await coord.get("/u/c") is not None


async def test_put_again_keeps_create_revision_and_bumps_version(coord: Coordinator) -> None:
    created = await coord.put("/k", b"1")
    updated = await coord.put("/k", b"2")
    kv = await coord.get("/k")
    assert kv == KV("/k", b"2", created, updated, 2, 0)


async def test_txn_compare_and_set(coord: Coordinator) -> None:
    await coord.put("/cas", b"old")
    lost = await coord.txn(
        [Cmp("/cas", "value", "==", b"other")], [Put("/cas", b"x")], [Get("/cas")]
    )
    won = await coord.txn([Cmp("/cas", "value", "==", b"old")], [Put("/cas", b"new")])

    assert not lost.succeeded
    assert isinstance(lost.responses[0], tuple)
    assert lost.responses[0][0].value == b"old"
    assert won.succeeded
    assert won.revision > lost.revision
    assert (await coord.get("/cas")) is not None
    assert (await coord.get("/cas")).value == b"new"  # type: ignore[union-attr]


async def test_only_one_of_concurrent_creators_wins(engine: EngineCluster) -> None:
    clients: list[Coordinator] = [await engine.client() for _ in range(2)]
    create_if_absent = [Cmp("/leader", "create_revision", "==", 0)]

    results = await asyncio.gather(
        *(
            c.txn(create_if_absent, [Put("/leader", f"c{i}".encode())])
            for i, c in enumerate(clients)
            for _ in range(5)
        )
    )

    assert sum(r.succeeded for r in results) == 1


async def test_txn_delete_and_get_responses(coord: Coordinator) -> None:
    await coord.put("/d/1", b"a")
    await coord.put("/d/2", b"b")
    result = await coord.txn([], [Get("/d/", prefix=True), Delete("/d/", prefix=True)])
    assert result.succeeded
    read, deleted = result.responses
    assert isinstance(read, tuple)
    assert [kv.key for kv in read] == ["/d/1", "/d/2"]
    assert deleted == 2


async def test_revisions_stay_monotonic_across_a_leader_kill(
    engine: EngineCluster, coord: Coordinator
) -> None:
    revisions = [await coord.put("/r", str(i).encode()) for i in range(5)]
    engine.kill(await engine.leader())
    for i in range(5):
        revisions.append(await eventually(lambda i=i: coord.put("/r", f"after{i}".encode())))

    assert revisions == sorted(set(revisions))
    assert await eventually(coord.revision) >= revisions[-1]


async def test_writes_resume_after_the_leader_is_killed(
    engine: EngineCluster, coord: Coordinator
) -> None:
    await coord.put("/before", b"1")
    engine.kill(await engine.leader())

    await eventually(lambda: coord.put("/after", b"2"))

    assert (await eventually(lambda: coord.get("/before"))) is not None


async def test_lease_expiry_deletes_its_keys(coord: Coordinator) -> None:
    lease = await coord.grant(coord.min_ttl)
    await coord.put("/leased/a", b"1", lease)
    await coord.put("/leased/b", b"2", lease)
    await coord.put("/kept", b"3")

    deadline = time.monotonic() + lease.ttl + 10
    while leftover := await coord.range("/leased/"):
        assert time.monotonic() < deadline, f"lease keys outlived the lease: {leftover}"
        await asyncio.sleep(0.1)

    assert await coord.get("/kept") is not None
    assert await coord.keepalive(lease) is False


async def test_put_with_an_expired_lease_is_refused(coord: Coordinator) -> None:
    lease = await coord.grant(coord.min_ttl)
    await coord.revoke(lease)
    with pytest.raises(LeaseExpired):
        await coord.put("/late", b"x", lease)


async def test_keepalive_extends_the_lease(coord: Coordinator) -> None:
    lease = await coord.grant(coord.min_ttl)
    await coord.put("/alive", b"1", lease)

    until = time.monotonic() + 2.5 * lease.ttl
    while time.monotonic() < until:
        assert await coord.keepalive(lease)
        await asyncio.sleep(lease.ttl / 4)

    assert await coord.get("/alive") is not None


async def test_lease_renewed_ago_never_reports_more_silence_than_there_was(
    coord: Coordinator,
) -> None:
    lease = await coord.grant(coord.min_ttl)
    sent = time.monotonic()
    assert await coord.keepalive(lease)
    await asyncio.sleep(0.2)

    age = await coord.lease_renewed_ago(lease.id)

    assert age is None or 0 <= age <= time.monotonic() - sent


async def test_revoke_deletes_the_keys_at_once(coord: Coordinator) -> None:
    lease = await coord.grant(coord.min_ttl)
    await coord.put("/rv", b"1", lease)
    await coord.revoke(lease)
    assert await coord.get("/rv") is None
    await coord.revoke(lease)  # already gone: not an error


async def test_ttl_below_the_engine_minimum_is_refused(coord: Coordinator) -> None:
    with pytest.raises(TTLTooShort, match="minimum"):
        await coord.grant(coord.min_ttl / 4)


async def test_no_lease_expires_before_its_ttl_when_the_leader_is_killed(
    engine: EngineCluster, coord: Coordinator
) -> None:
    ttl = max(coord.min_ttl, 3.0)
    lease = await coord.grant(ttl)
    await coord.put("/holder", b"me", lease)
    leader = await engine.leader()
    sent = time.monotonic()
    assert await coord.keepalive(lease)
    engine.kill(leader)

    # Present in a read sent just before the TTL runs out proves it was not deleted early
    # (a delete is final: nothing writes the key again).
    await asyncio.sleep(max(0.0, sent + ttl - 0.2 - time.monotonic()))
    read_sent = time.monotonic()
    still_there = await eventually(lambda: coord.get("/holder"))
    assert read_sent >= sent + ttl - 0.3
    assert still_there is not None, "lease expired before its TTL after a leader change"

    # ...and it does expire once nobody renews it.
    deadline = time.monotonic() + ttl + 15
    while await eventually(lambda: coord.get("/holder")) is not None:
        assert time.monotonic() < deadline, "orphaned lease never expired"
        await asyncio.sleep(0.1)


async def collect(
    coord: Coordinator, prefix: str, start: int | None, count: int, ready: asyncio.Event
) -> list[WatchEvent]:
    events: list[WatchEvent] = []
    async with contextlib.aclosing(coord.watch(prefix, start)) as stream:
        ready.set()
        async for event in stream:
            events.append(event)
            if len(events) == count:
                break
    return events


async def test_watch_delivers_every_event_in_order_from_a_start_revision(
    coord: Coordinator,
) -> None:
    revs = [await coord.put(f"/w/{i}", str(i).encode()) for i in range(10)]
    await coord.put("/other", b"not watched")
    deleted_at = await coord.txn([], [Delete("/w/3")])

    ready = asyncio.Event()
    events = await asyncio.wait_for(collect(coord, "/w/", revs[4], 7, ready), 20)

    assert [(e.type, e.kv.key) for e in events] == [
        *(("put", f"/w/{i}") for i in range(4, 10)),
        ("delete", "/w/3"),
    ]
    assert [e.revision for e in events] == [*revs[4:], deleted_at.revision]


async def test_watch_from_now_sees_only_new_changes(coord: Coordinator) -> None:
    await coord.put("/n/old", b"1")
    ready = asyncio.Event()
    watcher = asyncio.create_task(collect(coord, "/n/", None, 2, ready))
    await ready.wait()
    await asyncio.sleep(0.2)  # let the watch be established on the engine
    await coord.put("/n/new", b"2")
    await coord.delete("/n/old")
    events = await asyncio.wait_for(watcher, 20)
    assert [(e.type, e.kv.key) for e in events] == [("put", "/n/new"), ("delete", "/n/old")]


async def test_watch_resumes_after_the_leader_is_killed(
    engine: EngineCluster, coord: Coordinator
) -> None:
    writer = await engine.client()
    start = await writer.put("/s/0", b"0")
    ready = asyncio.Event()
    watcher = asyncio.create_task(collect(coord, "/s/", start, 20, ready))
    await ready.wait()
    for i in range(1, 10):
        await writer.put(f"/s/{i}", b"x")
    engine.kill(await engine.leader())
    for i in range(10, 20):
        await eventually(lambda i=i: create(writer, f"/s/{i}"))

    events = await asyncio.wait_for(watcher, 30)

    assert [e.kv.key for e in events] == [f"/s/{i}" for i in range(20)]
    revisions = [e.revision for e in events]
    assert revisions == sorted(set(revisions))


async def test_a_minority_can_neither_write_nor_renew(
    engine: EngineCluster, coord: Coordinator
) -> None:
    lease = await coord.grant(max(coord.min_ttl, 3.0))
    leader = await engine.leader()
    follower = next(n for n in engine.names if n != leader)
    for name in (follower, leader):
        await engine.stop(name)

    started = time.monotonic()
    deadline = started + 20
    while await coord.has_quorum():
        assert time.monotonic() < deadline, "has_quorum() kept saying True without a majority"
        await asyncio.sleep(0.1)

    with pytest.raises((NoQuorum, Unreachable)):
        await coord.put("/minority", b"x")
    with pytest.raises((NoQuorum, Unreachable)):
        await coord.keepalive(lease)


async def test_has_quorum_answers_false_promptly_without_a_majority(
    engine: EngineCluster, coord: Coordinator
) -> None:
    for name in engine.names[:2]:
        await engine.stop(name)
    # Let the survivor notice; then a single call must answer, not hang.
    await asyncio.sleep(3)
    started = time.monotonic()
    assert await coord.has_quorum() is False
    assert time.monotonic() - started < 10


async def test_a_restarted_member_rejoins_with_its_data(
    engine: EngineCluster, coord: Coordinator
) -> None:
    await coord.put("/durable", b"1")
    first = engine.names[0]
    await engine.stop(first)
    await eventually(lambda: coord.put("/while-down", b"2"))
    await engine.restart(first)
    await asyncio.sleep(2)
    # Without the restarted member's data there would be no majority now.
    await engine.stop(engine.names[1])

    assert (await eventually(lambda: coord.get("/durable"), 30)) is not None
    assert (await eventually(lambda: coord.get("/while-down"), 30)) is not None
