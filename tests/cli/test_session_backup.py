"""`SessionStores`: snapshot a real 3-node store found from a cluster spec, reseed a fresh
store on other addresses with it, and refuse a snapshot that does not belong there."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hakeeper.cli.session_backup import SessionStores
from hakeeper.errors import SessionStoreError
from hakeeper.model.cluster import ClusterSpec, Coordination, Primitive
from hakeeper.sessions import entries
from hakeeper.sessions.client import SessionClient
from hakeeper.sessions.snapshot import SnapshotFormatError
from tests.sessions.cluster import StoreCluster

pytestmark = pytest.mark.slow

SOURCE_HOSTS = ("127.0.0.154", "127.0.0.155", "127.0.0.156")
FRESH_HOSTS = ("127.0.0.157", "127.0.0.158", "127.0.0.159")
KEYS = 500
DEADLINE = 60.0
Contents = dict[bytes, tuple[bytes, int, float]]


def spec_of(cluster: StoreCluster) -> ClusterSpec:
    """The cluster spec a `sessions` resource named web would have for ``cluster``."""
    port = cluster.addresses[0].rpartition(":")[2]
    peer_port = cluster.peer_addresses[cluster.addresses[0]].rpartition(":")[2]
    nodes = {f"n{i}": h for i, h in enumerate(cluster.hosts, start=1)}
    params = {"port": int(port), "peer_port": int(peer_port), "nodes": nodes}
    return ClusterSpec(
        primitives=(Primitive(id="web", agent="sessions", params=params),),
        coordination=Coordination(secret_file=str(cluster.secret_file)),
    )


def running(tmp: Path, hosts: tuple[str, ...]) -> StoreCluster:
    cluster = StoreCluster(tmp, hosts=hosts, write_timeout=5.0, same_ports=True)
    cluster.start()
    asyncio.run(cluster.promote_first())
    asyncio.run(cluster.wait_replicated())
    return cluster


@pytest.fixture(scope="module")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StoreCluster, ...]]:
    made: list[StoreCluster] = []
    try:
        made.append(running(tmp_path_factory.mktemp("source"), SOURCE_HOSTS))
        made.append(running(tmp_path_factory.mktemp("fresh"), FRESH_HOSTS))
        yield tuple(made)
    finally:
        for cluster in made:
            cluster.close()


async def dump(cluster: StoreCluster, address: str) -> tuple[int, int, Contents]:
    async with cluster.control(address, DEADLINE) as client:
        epoch, seq, payload = await client.dump()
    return epoch, seq, {e[1]: (e[5], e[2], e[3]) for e in entries.decode(payload)}


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    """The snapshot's bytes cut as a backup reader may give them (not on entry bounds)."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def snapshot_bytes(stores: SessionStores) -> tuple[int, bytes]:
    snapshot = await stores.snapshot("web")
    return snapshot.epoch, b"".join([chunk async for chunk in snapshot.chunks()])


async def test_reseeded_fresh_store_holds_exactly_the_snapshot_on_every_node(
    clusters: tuple[StoreCluster, StoreCluster],
) -> None:
    source, fresh = clusters
    async with SessionClient(source.addresses[1], timeout=10.0) as client:
        for i in range(KEYS):
            exptime = 3600 if i % 3 == 0 else 0
            await client.set(b"s%d" % i, b"value-%d" % i, flags=i, exptime=exptime)
    async with SessionClient(fresh.addresses[0], timeout=10.0) as client:
        await client.set(b"stale", b"not in the snapshot")
    stores = SessionStores(spec_of(source), call_timeout=DEADLINE)
    assert stores.store_names() == ("web",)
    epoch, data = await snapshot_bytes(stores)
    _, _, expected = await dump(source, source.addresses[0])

    loaded = await SessionStores(spec_of(fresh), call_timeout=DEADLINE).reseed(
        "web", epoch, pieces(data, 1000)
    )

    assert loaded == KEYS == len(expected)
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while True:
        dumps = [await dump(fresh, address) for address in fresh.addresses]
        if len({(e, s) for e, s, _ in dumps}) == 1:
            break
        assert asyncio.get_running_loop().time() < deadline, "replicas never copied the seed"
        await asyncio.sleep(0.1)
    assert all(contents == expected for _, _, contents in dumps)
    async with SessionClient(fresh.addresses[2], timeout=10.0) as client:
        assert (await client.get(b"s7")) is not None
        assert (await client.get(b"stale")) is None


async def test_reseed_refuses_a_snapshot_of_another_epoch_and_changes_nothing(
    clusters: tuple[StoreCluster, StoreCluster],
) -> None:
    source, fresh = clusters
    epoch, data = await snapshot_bytes(SessionStores(spec_of(source), call_timeout=DEADLINE))
    before = await dump(fresh, fresh.addresses[0])
    with pytest.raises(SnapshotFormatError, match="backup is inconsistent"):
        await SessionStores(spec_of(fresh)).reseed("web", epoch + 1, pieces(data, 4096))
    assert await dump(fresh, fresh.addresses[0]) == before


async def test_reseed_refuses_a_corrupted_snapshot_and_changes_nothing(
    clusters: tuple[StoreCluster, StoreCluster],
) -> None:
    source, fresh = clusters
    epoch, data = await snapshot_bytes(SessionStores(spec_of(source), call_timeout=DEADLINE))
    header_end = data.index(b"\n") + 1
    corrupted = data[:header_end] + b"\x07" + data[header_end + 1 :]  # an op no entry has
    before = await dump(fresh, fresh.addresses[0])
    with pytest.raises(SessionStoreError, match="the store is unchanged"):
        await SessionStores(spec_of(fresh)).reseed("web", epoch, pieces(corrupted, 4096))
    assert await dump(fresh, fresh.addresses[0]) == before
