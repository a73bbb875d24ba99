"""The etcd backend against real etcd members on loopback (three per cluster).

Timings are never asserted tightly: deadlines only bound how long a test waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import aiohttp
import pytest

from hakeeper.coord.base import Cmp, Delete, Get, Put, WatchEvent
from hakeeper.coord.etcd import EtcdCoordinator
from hakeeper.errors import (
    Compacted,
    CoordError,
    EngineMismatch,
    LeaseExpired,
    NoQuorum,
    TTLTooShort,
    Unreachable,
)
from hakeeper.lab.etcd_cluster import EtcdCluster
from hakeeper.lab.processes import free_port
from tests.conftest import require_binary

pytestmark = pytest.mark.slow

T = TypeVar("T")


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[EtcdCluster]:
    require_binary("etcd")
    async with EtcdCluster(3, base_dir=tmp_path / "etcd") as lab:
        yield lab


@pytest.fixture
async def coord(cluster: EtcdCluster) -> EtcdCoordinator:
    return await cluster.client()


async def eventually(call: Callable[[], Awaitable[T]], deadline: float = 20.0) -> T:
    """Retry through engine errors (an election, a reconnect) until ``call`` succeeds."""
    stop = time.monotonic() + deadline
    while True:
        try:
            return await call()
        except CoordError:
            if time.monotonic() > stop:
                raise
            await asyncio.sleep(0.05)


def name_of(cluster: EtcdCluster, endpoint: str) -> str:
    return cluster.names[cluster.endpoints.index(endpoint)]


async def create_once(coord: EtcdCoordinator, key: str) -> None:
    """Create-if-absent: a retry after an ambiguous failure (the first attempt may have
    applied) adds no second event for a watch test to trip over."""
    await coord.txn([Cmp(key, "create_revision", "==", 0)], [Put(key, b"x")])


async def test_put_get_range_delete(coord: EtcdCoordinator) -> None:
    first = await coord.put("/t/a", b"1")
    await coord.put("/t/b", b"")
    await coord.put("/t0", b"outside the prefix")

    got = await coord.get("/t/a")
    assert got is not None
    assert (got.value, got.create_revision, got.mod_revision, got.version, got.lease) == (
        b"1", first, first, 1, 0,
    )  # fmt: skip
    assert [(kv.key, kv.value) for kv in await coord.range("/t/")] == [
        ("/t/a", b"1"),
        ("/t/b", b""),
    ]
    assert await coord.get("/missing") is None
    assert await coord.revision() >= first + 2
    assert await coord.delete("/t/", prefix=True) == 2
    assert await coord.delete("/t/", prefix=True) == 0
    assert await coord.get("/t0") is not None


async def test_txn_compare_and_set(coord: EtcdCoordinator) -> None:
    created = await coord.txn([Cmp("/cas", "create_revision", "==", 0)], [Put("/cas", b"a")])
    again = await coord.txn(
        [Cmp("/cas", "create_revision", "==", 0)], [Put("/cas", b"b")], [Get("/cas")]
    )
    swapped = await coord.txn(
        [Cmp("/cas", "value", "==", b"a"), Cmp("/cas", "mod_revision", "==", created.revision)],
        [Put("/cas", b"c"), Get("/cas"), Delete("/none", prefix=True)],
    )

    assert created.succeeded
    assert not again.succeeded
    assert again.revision == created.revision  # a failed read-only branch writes nothing
    read = again.responses[0]
    assert isinstance(read, tuple)
    assert read[0].value == b"a"
    assert swapped.succeeded
    assert swapped.revision == created.revision + 1
    put, got, deleted = swapped.responses
    assert put is None
    assert isinstance(got, tuple)
    assert got[0].value == b"c"
    assert deleted == 0
    with pytest.raises(CoordError, match="compare failed"):
        again.check()


async def test_lease_keepalive_then_expiry_deletes_its_keys(coord: EtcdCoordinator) -> None:
    lease = await coord.grant(coord.min_ttl)
    assert lease.ttl == coord.min_ttl
    await coord.put("/leased/a", b"1", lease)
    await coord.put("/leased/b", b"2", lease)
    await coord.put("/kept", b"3")
    leased = await coord.get("/leased/a")
    assert leased is not None
    assert leased.lease == lease.id

    until = time.monotonic() + 2 * lease.ttl
    while time.monotonic() < until:
        assert await coord.keepalive(lease)
        await asyncio.sleep(lease.ttl / 4)
    assert len(await coord.range("/leased/")) == 2

    deadline = time.monotonic() + lease.ttl + 15
    while await coord.range("/leased/"):
        assert time.monotonic() < deadline, "lease keys outlived their lease"
        await asyncio.sleep(0.1)
    assert await coord.get("/kept") is not None
    assert await coord.keepalive(lease) is False
    with pytest.raises(LeaseExpired):
        await coord.put("/late", b"x", lease)


async def test_revoke_deletes_at_once_and_twice_is_fine(coord: EtcdCoordinator) -> None:
    lease = await coord.grant(5)
    await coord.put("/rv", b"1", lease)
    await coord.revoke(lease)
    assert await coord.get("/rv") is None
    await coord.revoke(lease)
    with pytest.raises(LeaseExpired, match="grant a new lease"):
        await coord.put("/rv", b"2", lease)


async def test_ttl_below_the_minimum_is_refused(coord: EtcdCoordinator) -> None:
    with pytest.raises(TTLTooShort, match="minimum") as caught:
        await coord.grant(coord.min_ttl - 0.5)
    assert "--election-timeout" in str(caught.value)


async def test_ttl_that_etcd_would_silently_raise_is_refused(cluster: EtcdCluster) -> None:
    # This client believes in a 0.4 s election timeout (min 1 s); etcd's is 1 s (min 2 s).
    wrong = await EtcdCoordinator.open(cluster.endpoints, election_timeout=0.4)
    try:
        assert wrong.min_ttl == 1.0
        with pytest.raises(TTLTooShort, match="raised it to 2s"):
            await wrong.grant(1)
    finally:
        await wrong.close()


async def test_no_endpoint_answering_is_unreachable_quickly() -> None:
    endpoints = [f"http://127.0.0.1:{free_port()}" for _ in range(3)]
    started = time.monotonic()
    with pytest.raises(Unreachable) as caught:
        await EtcdCoordinator.open(endpoints, request_timeout=1.0)
    assert time.monotonic() - started < 5
    message = str(caught.value)
    for endpoint in endpoints:
        assert endpoint in message
    assert "--listen-client-urls" in message


async def test_endpoints_of_two_clusters_are_an_engine_mismatch(tmp_path: Path) -> None:
    require_binary("etcd")
    async with (
        EtcdCluster(1, base_dir=tmp_path / "one") as one,
        EtcdCluster(1, base_dir=tmp_path / "two") as two,
    ):
        mixed = [*one.endpoints, *two.endpoints]
        with pytest.raises(EngineMismatch) as caught:
            await EtcdCoordinator.open(mixed)
        for endpoint in mixed:
            assert endpoint in str(caught.value)


async def test_watch_from_a_start_revision_in_order(coord: EtcdCoordinator) -> None:
    revs = [await coord.put(f"/w/{i}", str(i).encode()) for i in range(6)]
    await coord.put("/w0", b"outside")
    both = await coord.txn([], [Put("/w/a", b"x"), Delete("/w/0")])

    events: list[WatchEvent] = []
    async with contextlib.aclosing(coord.watch("/w/", revs[2])) as stream:
        async for event in stream:
            events.append(event)
            if len(events) == 6:
                break

    assert [(e.type, e.kv.key) for e in events] == [
        *(("put", f"/w/{i}") for i in range(2, 6)),
        ("put", "/w/a"),
        ("delete", "/w/0"),
    ]
    assert [e.revision for e in events] == [*revs[2:], both.revision, both.revision]
    assert events[-1].kv.value == b""


async def test_watch_from_now_sees_only_new_changes(coord: EtcdCoordinator) -> None:
    await coord.put("/n/old", b"1")

    async def collect() -> list[WatchEvent]:
        out: list[WatchEvent] = []
        async with contextlib.aclosing(coord.watch("/n/")) as stream:
            async for event in stream:
                out.append(event)
                if len(out) == 2:
                    return out
        return out

    watcher = asyncio.create_task(collect())
    await asyncio.sleep(0.5)
    await coord.put("/n/new", b"2")
    await coord.delete("/n/old")
    events = await asyncio.wait_for(watcher, 20)
    assert [(e.type, e.kv.key) for e in events] == [("put", "/n/new"), ("delete", "/n/old")]


async def test_watch_resumes_after_its_endpoint_is_killed(cluster: EtcdCluster) -> None:
    writer = await cluster.client()
    watcher_coord = await cluster.client()
    start = await writer.put("/s/0", b"0")
    streaming_from = watcher_coord.current_endpoint
    events: list[WatchEvent] = []
    got_ten = asyncio.Event()

    async def collect() -> None:
        async with contextlib.aclosing(watcher_coord.watch("/s/", start)) as stream:
            async for event in stream:
                events.append(event)
                if len(events) == 10:
                    got_ten.set()
                if len(events) == 20:
                    return

    task = asyncio.create_task(collect())
    for i in range(1, 10):
        await writer.put(f"/s/{i}", b"x")
    await asyncio.wait_for(got_ten.wait(), 20)
    cluster.kill(name_of(cluster, streaming_from))
    for i in range(10, 20):
        await eventually(lambda i=i: create_once(writer, f"/s/{i}"))
    await asyncio.wait_for(task, 30)

    assert [e.kv.key for e in events] == [f"/s/{i}" for i in range(20)]
    revisions = [e.revision for e in events]
    assert revisions == sorted(set(revisions))


async def test_watch_of_compacted_history_raises(coord: EtcdCoordinator) -> None:
    first = await coord.put("/c/a", b"1")
    last = await coord.put("/c/a", b"2")
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        url = coord.current_endpoint + "/v3/kv/compaction"
        async with session.post(url, json={"revision": str(last), "physical": True}) as resp:
            assert resp.status == 200, await resp.text()

    with pytest.raises(Compacted):
        async with contextlib.aclosing(coord.watch("/c/", first)) as stream:
            await asyncio.wait_for(anext(stream), 20)


async def test_minority_has_no_quorum_and_cannot_write(
    cluster: EtcdCluster, coord: EtcdCoordinator
) -> None:
    lease = await coord.grant(3)
    leader = await cluster.leader()
    follower = next(n for n in cluster.names if n != leader)
    for name in (follower, leader):
        cluster.kill(name)

    deadline = time.monotonic() + 20
    while await coord.has_quorum():
        assert time.monotonic() < deadline, "has_quorum() kept saying True without a majority"
        await asyncio.sleep(0.1)
    asked = time.monotonic()
    assert await coord.has_quorum() is False
    assert time.monotonic() - asked < 5  # ~1.5 × election timeout, plus a noisy machine

    with pytest.raises((NoQuorum, Unreachable)):
        await coord.put("/minority", b"x")
    with pytest.raises((NoQuorum, Unreachable)):
        await coord.keepalive(lease)


async def test_writes_resume_after_the_leader_is_killed(
    cluster: EtcdCluster, coord: EtcdCoordinator
) -> None:
    before = await coord.put("/before", b"1")
    old_leader = await cluster.leader()
    cluster.kill(old_leader)

    after = await eventually(lambda: coord.put("/after", b"2"))

    assert after > before
    assert await cluster.leader() != old_leader
    assert (await eventually(lambda: coord.get("/before"))) is not None
    assert await coord.has_quorum()


async def test_restarted_member_rejoins_with_its_data(
    cluster: EtcdCluster, coord: EtcdCoordinator
) -> None:
    await coord.put("/durable", b"1")
    first = cluster.names[0]
    await cluster.stop(first)
    assert cluster.pid(first) is None
    await eventually(lambda: coord.put("/while-down", b"2"))
    await cluster.restart(first)
    assert cluster.pid(first) is not None
    await asyncio.sleep(2)
    await cluster.stop(cluster.names[1])  # now a majority needs the restarted member

    assert await eventually(lambda: coord.get("/durable"), 30) is not None
    assert await eventually(lambda: coord.get("/while-down"), 30) is not None


async def test_close_is_idempotent_and_reaps_members(tmp_path: Path) -> None:
    require_binary("etcd")
    lab = EtcdCluster(1, base_dir=tmp_path)
    await lab.start()
    coord = await lab.client()
    pid = lab.pid(lab.names[0])
    assert pid is not None
    await coord.close()
    await coord.close()
    await lab.close()
    await lab.close()
    assert lab.pid(lab.names[0]) is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped, not a zombie: the PID is gone
    log = tmp_path / lab.names[0] / "etcd.log"
    assert await asyncio.to_thread(lambda: log.stat().st_size) > 0


async def test_close_removes_the_members_data_and_keeps_their_logs(tmp_path: Path) -> None:
    require_binary("etcd")
    lab = EtcdCluster(1, base_dir=tmp_path)
    await lab.start()
    member = tmp_path / lab.names[0]
    assert (member / "data").is_dir()

    await lab.close()

    assert not (member / "data").exists()  # 128 MB of preallocated WAL per member
    assert (member / "etcd.log").is_file()


async def test_one_endpoint_down_at_connect_is_tolerated(cluster: EtcdCluster) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    coord = await EtcdCoordinator.open([dead, *cluster.endpoints])
    try:
        assert coord.current_endpoint != dead
        revision = await coord.put("/k", b"v")
        assert await coord.revision() >= revision
    finally:
        await coord.close()


async def test_watch_moves_off_a_member_that_hangs(cluster: EtcdCluster) -> None:
    writer = await cluster.client()
    # A short idle timeout so the silent stream is noticed quickly.
    watching = await EtcdCoordinator.open(cluster.endpoints, watch_idle=1.0, request_timeout=1.0)
    start = await writer.put("/h/0", b"0")
    hung = name_of(cluster, watching.current_endpoint)
    events: list[WatchEvent] = []

    async def collect() -> None:
        async with contextlib.aclosing(watching.watch("/h/", start)) as stream:
            async for event in stream:
                events.append(event)
                if len(events) == 6:
                    return

    task = asyncio.create_task(collect())
    try:
        await writer.put("/h/1", b"x")
        await asyncio.sleep(0.5)
        cluster.pause(hung)
        for i in range(2, 6):
            await eventually(lambda i=i: create_once(writer, f"/h/{i}"))
        await asyncio.wait_for(task, 30)
    finally:
        cluster.resume(hung)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await watching.close()

    assert [e.kv.key for e in events] == [f"/h/{i}" for i in range(6)]


async def test_a_watch_does_not_wait_for_a_member_that_hangs_before_answering(
    cluster: EtcdCluster,
) -> None:
    """The member a new watch goes to first accepts the connection and the request but never
    answers (SIGSTOP): the watch must give up on it and start on another member."""
    writer = await cluster.client()
    watching = await EtcdCoordinator.open(cluster.endpoints, watch_idle=1.0, request_timeout=1.0)
    start = await writer.put("/hb/0", b"0")
    hung = name_of(cluster, watching.current_endpoint)
    cluster.pause(hung)
    try:
        await eventually(lambda: create_once(writer, "/hb/1"))
        async with (
            asyncio.timeout(30),
            contextlib.aclosing(watching.watch("/hb/", start)) as stream,
        ):
            keys = [(await anext(stream)).kv.key for _ in range(2)]
    finally:
        cluster.resume(hung)
        await watching.close()
    assert keys == ["/hb/0", "/hb/1"]
