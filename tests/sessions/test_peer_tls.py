"""TLS on the peer link (optional): a 3-node store replicating and forwarding over it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hakeeper.errors import SessionStoreError
from hakeeper.sessions.client import SessionClient
from tests.conftest import require_binary
from tests.sessions.cluster import StoreCluster
from tests.sessions.servers import peer_tls_files

pytestmark = pytest.mark.slow


@pytest.fixture
async def tls_cluster(tmp_path: Path) -> AsyncIterator[StoreCluster]:
    require_binary("openssl")
    cluster = StoreCluster(tmp_path, hosts=("127.0.0.71", "127.0.0.72", "127.0.0.73"))
    cluster.tls = peer_tls_files(tmp_path)
    async with cluster.running():
        yield cluster


async def test_store_replicates_and_forwards_over_peer_tls(tls_cluster: StoreCluster) -> None:
    primary, replica, third = tls_cluster.addresses
    async with SessionClient(replica, timeout=10.0) as client:
        # Forwarded to the primary over TLS; acknowledged once a majority holds it.
        assert await client.set(b"k", b"over tls") == b"STORED"
    async with SessionClient(primary, timeout=10.0) as client:
        found = await client.get(b"k")
    assert found is not None
    assert found.data == b"over tls"
    for _ in range(100):
        if (await tls_cluster.position(third)).seq == (await tls_cluster.position(primary)).seq:
            break
        await asyncio.sleep(0.1)
    assert (await tls_cluster.position(third)).seq == (await tls_cluster.position(primary)).seq


async def test_plain_connection_to_a_tls_peer_port_is_refused(tls_cluster: StoreCluster) -> None:
    replica = tls_cluster.addresses[1]
    plain = SessionClient(
        tls_cluster.peer_addresses[replica], timeout=5.0, secret_file=tls_cluster.secret_file
    )
    with pytest.raises(SessionStoreError):
        async with plain as client:
            await client.position()
    assert tls_cluster.procs[replica].running
    async with SessionClient(replica, timeout=10.0) as client:
        assert await client.set(b"after", b"x") == b"STORED"
