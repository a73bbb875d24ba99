"""Hostile tests against the snapshot and seed verbs of a real 3-node session store.

Each test attacks one surface and then asserts (1) the attack failed, (2) the attacked node
is still alive, (3) a normal set/get afterwards succeeds (and, where it applies, a real
snapshot still reads whole).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from hakeeper.config.secret_file import read_secret_file
from hakeeper.errors import SessionStoreError
from hakeeper.sessions import entries
from hakeeper.sessions.peer_auth import handshake_stream
from hakeeper.sessions.snapshot_transfer import take_snapshot
from tests.security.test_sessions import assert_alive_and_serving, exchange, rss_bytes
from tests.sessions.cluster import StoreCluster

pytestmark = pytest.mark.slow

HOSTS = ("127.0.0.161", "127.0.0.162", "127.0.0.163")
SNAPSHOT_VERBS = (
    b"hk_snapshot\r\nhk_snapchunk 1 1024\r\nhk_seed_begin 1\r\n"
    b"hk_seed 1 5\r\nxxxxx\r\nhk_seed_end 1 0\r\n"
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreCluster]:
    store = StoreCluster(tmp_path_factory.mktemp("snapsec"), hosts=HOSTS, write_timeout=5.0)
    try:
        store.start()
        asyncio.run(store.promote_first())
        asyncio.run(store.wait_replicated())
        yield store
    finally:
        store.close()


async def contents(cluster: StoreCluster, address: str) -> dict[bytes, bytes]:
    async with cluster.control(address) as client:
        _, _, payload = await client.dump()
    return {entry[1]: entry[5] for entry in entries.decode(payload)}


async def test_snapshot_verbs_without_the_secret_are_never_parsed(cluster: StoreCluster) -> None:
    primary = cluster.addresses[0]
    await assert_alive_and_serving(cluster, primary)
    # The peer port closes a connection that does not open with the handshake.
    assert exchange(cluster.peer_addresses[primary], SNAPSHOT_VERBS, wait=1.0) == b""
    # The client port answers each line as an unknown command, as memcached does.
    assert exchange(primary, SNAPSHOT_VERBS) == b"ERROR\r\n" * 6
    await assert_alive_and_serving(cluster, primary)


async def test_guessed_tokens_read_and_seed_nothing(cluster: StoreCluster) -> None:
    primary = cluster.addresses[0]
    await assert_alive_and_serving(cluster, primary)
    before = await contents(cluster, primary)
    snapshot = await take_snapshot(cluster.control(primary, 30.0), 4096)
    async with cluster.control(primary) as attacker:
        for guess in (0, 1, 2**62 - 1, snapshot.seq):
            with pytest.raises(SessionStoreError, match="no open snapshot"):
                await attacker.snapshot_chunk(guess, 1 << 20, 2 << 20)
            with pytest.raises(SessionStoreError, match="no seed"):
                await attacker.seed(guess, entries.encode_put(b"evil", b"x", 0, 0.0, 1))
            with pytest.raises(SessionStoreError, match="no seed"):
                await attacker.seed_end(guess, 0)
        with pytest.raises(SessionStoreError, match="being read already"):
            await attacker.snapshot_open()
    chunks = [chunk async for chunk in snapshot.chunks()]
    assert len(entries.decode(b"".join(chunks[1:]))) == snapshot.keys
    assert await contents(cluster, primary) == before
    await assert_alive_and_serving(cluster, primary)


async def test_oversized_seed_block_is_refused_from_its_header(cluster: StoreCluster) -> None:
    primary = cluster.addresses[0]
    pid = cluster.procs[primary].pid
    assert pid is not None
    before_rss = rss_bytes(pid)
    async with cluster.control(primary) as attacker:
        with pytest.raises(SessionStoreError, match="larger than this node accepts"):
            await attacker.command(b"hk_seed 1 4000000000\r\n" + b"x" * (1 << 20))
    assert rss_bytes(pid) - before_rss < 32 << 20
    await assert_alive_and_serving(cluster, primary)


async def test_junk_and_a_second_seed_leave_the_store_unchanged(cluster: StoreCluster) -> None:
    primary = cluster.addresses[0]
    await assert_alive_and_serving(cluster, primary)
    before = await contents(cluster, primary)
    async with cluster.control(primary) as attacker:
        token = await attacker.seed_begin(1)
        with pytest.raises(SessionStoreError, match="being loaded already"):
            await attacker.seed_begin(1)
        with pytest.raises(SessionStoreError, match="seed dropped, the store is unchanged"):
            await attacker.seed(token, b"\xff" * 4096)
        with pytest.raises(SessionStoreError, match="no seed"):
            await attacker.seed_end(token, 0)
    assert await contents(cluster, primary) == before
    await assert_alive_and_serving(cluster, primary)


async def test_pipelined_chunk_requests_never_read_do_not_stop_the_node(
    cluster: StoreCluster,
) -> None:
    primary = cluster.addresses[0]
    pid = cluster.procs[primary].pid
    assert pid is not None
    async with cluster.control(primary) as client:
        for i in range(2000):
            await client.set(b"bulk%d" % i, b"v" * 1000)
    before_rss = rss_bytes(pid)
    host, _, port = cluster.peer_addresses[primary].rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        await handshake_stream(reader, writer, read_secret_file(cluster.secret_file))
        writer.write(b"hk_snapshot\r\n")
        token = int((await asyncio.wait_for(reader.readline(), 10.0)).split()[1])
        # The chunk asked for thousands of times in one write, and nothing read back: the
        # node stops reading this connection once its replies are not taken.
        writer.write(b"hk_snapchunk %d 4194304\r\n" % token * 20_000)
        await writer.drain()
        await assert_alive_and_serving(cluster, primary)
        assert rss_bytes(pid) - before_rss < 64 << 20
    finally:
        writer.close()
    await assert_alive_and_serving(cluster, primary)
