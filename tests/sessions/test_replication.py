"""Replication on three real store processes: forwarding, majority, fencing, catch-up."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hakeeper.errors import SessionStoreError
from hakeeper.sessions.client import SessionClient
from hakeeper.sessions.position import Role
from tests.sessions.cluster import StoreCluster

pytestmark = pytest.mark.slow


async def stored(address: str, key: bytes, value: bytes, timeout: float = 5.0) -> bytes:
    async with SessionClient(address, timeout=timeout) as client:
        return await client.set(key, value)


async def read(address: str, key: bytes) -> bytes | None:
    async with SessionClient(address, timeout=5.0) as client:
        found = await client.get(key)
        return found.data if found is not None else None


async def test_writes_through_any_node_are_read_back_from_every_node(
    store_cluster: StoreCluster,
) -> None:
    await store_cluster.promote_first()
    for index, address in enumerate(store_cluster.addresses):
        assert await stored(address, b"k%d" % index, b"v%d" % index) == b"STORED"
    for address in store_cluster.addresses:
        for index in range(3):
            assert await read(address, b"k%d" % index) == b"v%d" % index


async def test_primary_without_a_majority_acknowledges_nothing(
    store_cluster: StoreCluster,
) -> None:
    await store_cluster.promote_first()
    await store_cluster.wait_replicated()
    primary, *replicas = store_cluster.addresses
    for address in replicas:
        store_cluster.kill(address)
    with pytest.raises(SessionStoreError):
        await stored(primary, b"alone", b"x", timeout=3.0)
    with pytest.raises(SessionStoreError):
        await read(primary, b"alone")


async def test_fenced_primary_steps_down_and_acknowledges_nothing(
    store_cluster: StoreCluster,
) -> None:
    await store_cluster.promote_first()
    await store_cluster.wait_replicated()
    primary, *replicas = store_cluster.addresses
    for address in replicas:
        async with store_cluster.control(address) as client:
            await client.fence(2)
    with pytest.raises(SessionStoreError):
        await stored(primary, b"late", b"x", timeout=3.0)
    position = await store_cluster.position(primary)
    assert position.role is Role.REPLICA
    assert position.seen_epoch == 2


async def test_a_write_survives_its_primary_and_the_replica_that_acknowledged_it(
    store_cluster: StoreCluster,
) -> None:
    """The seventh 1-hour nemesis run's loss: a write acknowledged by the primary and one
    replica, then both lost their memory before the third store had been sent the write. By
    the acknowledgement every replica keeping up must have been sent it."""
    await store_cluster.promote_first()
    await store_cluster.wait_replicated()
    primary, *replicas = store_cluster.addresses
    for index in range(20):  # the replicas' acks settle which one the commit waits for
        assert await stored(primary, b"warm%d" % index, b"x") == b"STORED"
    assert await stored(primary, b"acked", b"kept") == b"STORED"
    store_cluster.kill(primary)
    positions = {address: await store_cluster.position(address) for address in replicas}
    acknowledger = max(replicas, key=lambda address: positions[address].seq)
    third = next(address for address in replicas if address != acknowledger)
    for address in (primary, acknowledger):
        await asyncio.to_thread(store_cluster.restart, address)  # back empty
    assert await store_cluster.fail_over(lost=primary) == third
    assert await read(third, b"acked") == b"kept"


async def test_restarted_replica_catches_up_by_snapshot_then_stream(
    store_cluster: StoreCluster,
) -> None:
    await store_cluster.promote_first()
    primary, _, third = store_cluster.addresses
    store_cluster.kill(third)
    for index in range(50):
        assert await stored(primary, b"before%d" % index, b"x") == b"STORED"
    await asyncio.to_thread(store_cluster.restart, third)
    await store_cluster.wait_replicated()
    assert await stored(primary, b"after", b"y") == b"STORED"
    for _ in range(50):
        if (await store_cluster.position(third)).seq == (await store_cluster.position(primary)).seq:
            break
        await asyncio.sleep(0.1)
    async with SessionClient(third) as client:
        stats = await client.command(b"stats")
    assert stats.startswith(b"STAT pid")
    positions = [await store_cluster.position(a) for a in (primary, third)]
    assert positions[0].seq == positions[1].seq


async def test_stale_reads_replica_answers_from_its_own_copy(tmp_path: Path) -> None:
    cluster = StoreCluster(tmp_path, hosts=("127.0.0.41", "127.0.0.42", "127.0.0.43"))
    cluster.extra = ("--stale-reads",)
    try:
        cluster.start()
        await cluster.promote_first()
        primary, replica, _ = cluster.addresses
        assert await stored(replica, b"k", b"v") == b"STORED"
        for _ in range(50):
            if await read(replica, b"k") == b"v":
                break
            await asyncio.sleep(0.1)
        assert await read(replica, b"k") == b"v"
        cluster.kill(primary)
        # The primary is gone, yet the replica still serves what it holds.
        assert await read(replica, b"k") == b"v"
    finally:
        cluster.close()
