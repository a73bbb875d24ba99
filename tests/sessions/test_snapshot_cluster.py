"""A consistent snapshot of a real 3-node store while writers run, checked against their
acknowledged history: every write acknowledged before the snapshot was asked for is in it,
and each writer's keys show one instant of its sequence (never a torn copy)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from hakeeper.sessions import entries
from hakeeper.sessions.client import SessionClient
from hakeeper.sessions.client_codec import BusyReply, ErrorReply
from hakeeper.sessions.position import Role
from hakeeper.sessions.snapshot import SnapshotHeader
from hakeeper.sessions.snapshot_transfer import find_primary, take_snapshot
from tests.sessions.cluster import StoreCluster

pytestmark = pytest.mark.slow

HOSTS = ("127.0.0.151", "127.0.0.152", "127.0.0.153")
KEYS_PER_WRITER = 8  # each writer cycles over its own keys: w<n>:0 .. w<n>:7
BULK_KEYS = 30_000  # so that reading the snapshot takes many chunks while writers go on
CHUNK = 64 << 10
DEADLINE = 60.0


@dataclass
class History:
    """One writer's sets, in order: when each was sent and when it was acknowledged."""

    writer: int
    sent: dict[int, float] = field(default_factory=dict)
    acked: dict[int, float] = field(default_factory=dict)

    def last_acked_before(self, moment: float) -> int:
        return max((i for i, at in self.acked.items() if at < moment), default=0)

    def last_sent_before(self, moment: float) -> int:
        return max((i for i, at in self.sent.items() if at < moment), default=0)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreCluster]:
    cluster = StoreCluster(tmp_path_factory.mktemp("snap"), hosts=HOSTS, write_timeout=5.0)
    try:
        cluster.start()
        asyncio.run(cluster.promote_first())
        asyncio.run(cluster.wait_replicated())
        yield cluster
    finally:
        cluster.close()


async def preload(address: str, count: int) -> None:
    """``count`` sets in one pipelined write (the bulk a snapshot must also carry)."""
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        value = b"b" * 100
        writer.write(b"".join(b"set bulk%d 0 0 100\r\n%s\r\n" % (i, value) for i in range(count)))
        async with asyncio.timeout(DEADLINE):
            for _ in range(count):
                assert await reader.readline() == b"STORED\r\n"
    finally:
        writer.close()


async def write_until(address: str, history: History, stop: asyncio.Event) -> None:
    """Set w<n>:<i mod 8> = i for i = 1, 2, ..., each after the previous was acknowledged."""
    loop = asyncio.get_running_loop()
    async with SessionClient(address, timeout=10.0) as client:
        i = 0
        while not stop.is_set():
            i += 1
            history.sent[i] = loop.time()
            key = b"w%d:%d" % (history.writer, i % KEYS_PER_WRITER)
            assert await client.set(key, b"%d" % i) == b"STORED"
            history.acked[i] = loop.time()


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.05)


async def test_snapshot_under_writers_holds_every_acknowledged_write_and_one_instant(
    store: StoreCluster,
) -> None:
    await preload(store.addresses[0], BULK_KEYS)
    # Two writers on the primary, one on each replica (forwarded to the primary).
    targets = [store.addresses[0], store.addresses[0], *store.addresses[1:]]
    histories = [History(n) for n in range(len(targets))]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    async with asyncio.TaskGroup() as tg:
        for address, history in zip(targets, histories, strict=True):
            tg.create_task(write_until(address, history, stop))
        try:
            await wait_for(
                lambda: all(len(h.acked) > 2 * KEYS_PER_WRITER for h in histories),
                "writers did not get going",
            )
            primary = await find_primary(store.addresses, store.control, DEADLINE)
            asked = loop.time()
            snapshot = await take_snapshot(store.control(primary, DEADLINE), CHUNK)
            answered = loop.time()
            chunks = [chunk async for chunk in snapshot.chunks()]
            done_reading = loop.time()
        finally:
            stop.set()

    header = SnapshotHeader.parse(chunks[0])
    assert (header.epoch, header.seq, header.keys) == (snapshot.epoch, snapshot.seq, snapshot.keys)
    decoded = entries.decode(b"".join(chunks[1:]))
    assert len(decoded) == header.keys == BULK_KEYS + len(histories) * KEYS_PER_WRITER
    assert len(chunks) > 10
    values = {entry[1]: entry[5] for entry in decoded}
    for history in histories:
        mine = sorted(int(values[b"w%d:%d" % (history.writer, k)]) for k in range(KEYS_PER_WRITER))
        last = mine[-1]
        # One instant of this writer: its last 8 sets, consecutive, nothing newer mixed in.
        assert mine == list(range(last - KEYS_PER_WRITER + 1, last + 1)), mine
        assert last >= history.last_acked_before(asked)
        assert last <= history.last_sent_before(answered)
    # Writes went on while the snapshot was read; none of them reached it.
    assert any(h.last_acked_before(done_reading) > h.last_sent_before(answered) for h in histories)


async def test_snapshot_on_a_replica_is_refused(store: StoreCluster) -> None:
    async with store.control(store.addresses[1]) as client:
        with pytest.raises(ErrorReply, match="not the primary"):
            await client.command(b"hk_snapshot")
        assert (await client.position()).role is Role.REPLICA


async def test_a_second_snapshot_waits_for_the_first_to_be_read(store: StoreCluster) -> None:
    primary = await find_primary(store.addresses, store.control, DEADLINE)
    first = await take_snapshot(store.control(primary, DEADLINE), CHUNK)
    try:
        with pytest.raises(BusyReply, match="being read already"):
            await take_snapshot(store.control(primary, DEADLINE), CHUNK)
        second = asyncio.create_task(
            take_snapshot(store.control(primary, DEADLINE), CHUNK, busy_wait=DEADLINE)
        )
        await asyncio.sleep(1.0)
        assert not second.done()  # still asking while the first is open
        first_chunks = [chunk async for chunk in first.chunks()]
    finally:
        await first.close()
    waited = await second
    second_chunks = [chunk async for chunk in waited.chunks()]
    assert len(entries.decode(b"".join(second_chunks[1:]))) == waited.keys
    assert waited.keys == len(entries.decode(b"".join(first_chunks[1:])))
