"""Hostile tests against a real replicated session store (3 node processes on loopback).

Each test attacks one surface and then asserts (1) the attack failed, (2) the attacked node
process is still alive, (3) a normal set/get afterwards succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hakeeper.config.secret_file import write_secret_file
from hakeeper.errors import SessionStoreError
from hakeeper.sessions.client import SessionClient
from hakeeper.sessions.position import Position, Role
from tests.conftest import require_binary
from tests.sessions.cluster import StoreCluster

pytestmark = pytest.mark.slow

MAX_CONNECTIONS = 48
IDLE_TIMEOUT = 3.0
REQUEST_TIMEOUT = 3.0
HK_COMMANDS = [
    b"hk_dump\r\n",
    b"hk_position\r\n",
    b"hk_fence 99\r\n",
    b"hk_promote 99\r\n",
    b"hk_demote\r\n",
    b"hk_hello 99 127.0.0.1:1\r\n",
    b"hk_hello 99 \xff\xfe:99999999\r\n",
    b"hk_snap 99 0 5\r\nxxxxx\r\n",
    b"hk_batch 99 1 1 5\r\nxxxxx\r\n",
    b"hk_adopt 99 1000 5\r\nxxxxx\r\n",
    b"hk_snapshot\r\n",
    b"hk_snapchunk 1 1024\r\n",
    b"hk_seed_begin 1\r\n",
    b"hk_seed 1 5\r\nxxxxx\r\n",
    b"hk_seed_end 1 0\r\n",
]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[StoreCluster]:
    store = StoreCluster(
        tmp_path,
        hosts=("127.0.0.61", "127.0.0.62", "127.0.0.63"),
        extra=(
            "--max-connections",
            str(MAX_CONNECTIONS),
            "--idle-timeout",
            str(IDLE_TIMEOUT),
            "--request-timeout",
            str(REQUEST_TIMEOUT),
        ),
    )
    async with store.running():
        yield store


def exchange(address: str, data: bytes, wait: float = 0.5) -> bytes:
    """Send ``data`` on a fresh connection; everything answered within ``wait`` seconds."""
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(data)
        return read_for(sock, wait)


def read_for(sock: socket.socket, wait: float) -> bytes:
    sock.settimeout(0.1)
    received = bytearray()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    return bytes(received)


def closed_by_server(sock: socket.socket, wait: float) -> bool:
    sock.settimeout(0.2)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True
    return False


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


async def positions(cluster: StoreCluster) -> list[tuple[Role, int, int]]:
    """Each node's role and epochs: what a control command would change. (The seq moves on
    any read, which appends a no-op entry as its barrier.)"""
    found: list[Position] = [await cluster.position(address) for address in cluster.addresses]
    return [(p.role, p.log_epoch, p.seen_epoch) for p in found]


async def assert_alive_and_serving(cluster: StoreCluster, address: str) -> None:
    assert cluster.procs[address].running, f"{address} died"
    async with SessionClient(address, timeout=10.0) as client:
        assert await client.set(b"after-attack", b"fine") == b"STORED"
        found = await client.get(b"after-attack")
    assert found is not None
    assert found.data == b"fine"


async def test_every_hk_command_on_the_client_port_is_answered_as_memcached_does(
    cluster: StoreCluster, memcached_address: str
) -> None:
    primary, replica, _ = cluster.addresses
    await store_value(primary, b"secret-session", b"alice's cart")
    before = await positions(cluster)
    for command in HK_COMMANDS:
        expected = exchange(memcached_address, command)
        assert expected.startswith(b"ERROR\r\n")
        for address in (primary, replica):
            reply = exchange(address, command)
            # Byte for byte what memcached answers an unknown command: no dump, no STALE.
            assert reply == expected, (command, reply)
            assert b"alice's cart" not in reply
    assert await positions(cluster) == before
    assert (await cluster.position(primary)).role is Role.PRIMARY
    await assert_alive_and_serving(cluster, primary)
    await assert_alive_and_serving(cluster, replica)


async def store_value(address: str, key: bytes, value: bytes) -> None:
    async with SessionClient(address, timeout=10.0) as client:
        assert await client.set(key, value) == b"STORED"


async def test_peer_port_without_the_secret_is_refused_before_any_command(
    cluster: StoreCluster,
) -> None:
    primary, replica, _ = cluster.addresses
    await store_value(primary, b"secret-session", b"alice's cart")
    before = await positions(cluster)
    peer = cluster.peer_addresses[replica]
    # Commands straight away, no handshake: the connection is closed, nothing parsed.
    reply = exchange(peer, b"hk_fence 99\r\nhk_dump\r\nhk_promote 99\r\n", wait=1.0)
    assert reply == b""
    # A forged handshake: a made-up proof is denied.
    forged = exchange(peer, b"HK_AUTH 1 " + b"00" * 16 + b"\r\nHK_PROOF " + b"ab" * 32 + b"\r\n")
    assert forged.endswith(b"HK_DENIED\r\n")
    # A node holding another secret: refused both ways, nothing applied.
    wrong = tmp_secret(cluster.tmp)
    with pytest.raises(SessionStoreError):
        async with SessionClient(peer, timeout=5.0, secret_file=wrong) as client:
            await client.fence(99)
    assert await positions(cluster) == before
    await assert_alive_and_serving(cluster, replica)
    await assert_alive_and_serving(cluster, primary)


def tmp_secret(directory: Path) -> Path:
    path = directory / "another-cluster-secret"
    write_secret_file(path)
    return path


async def test_silent_peer_connection_is_dropped_at_the_handshake_deadline(
    cluster: StoreCluster,
) -> None:
    _, replica, _ = cluster.addresses
    host, _, port = cluster.peer_addresses[replica].rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"HK_AUTH")  # and nothing more
        assert closed_by_server(sock, wait=15.0)
    await assert_alive_and_serving(cluster, replica)


async def test_huge_hk_batch_header_is_refused_before_buffering(cluster: StoreCluster) -> None:
    replica = cluster.addresses[1]
    pid = cluster.procs[replica].pid
    assert pid is not None
    before_rss = rss_bytes(pid)
    before = await positions(cluster)
    junk = b"x" * (1 << 20)
    # On the client port: an unknown command, and the junk closes the connection (a line
    # over 2,048 bytes without a newline), as memcached does.
    host, _, port = replica.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"hk_batch 1 1 1 4000000000\r\n")
        assert read_for(sock, 1.0) == b"ERROR\r\n"
        with contextlib.suppress(OSError):
            for _ in range(32):
                sock.sendall(junk)
        assert closed_by_server(sock, 5.0)
    # On the peer port, even with the secret: refused from the header, connection closed.
    with pytest.raises(SessionStoreError, match="stream block larger"):
        async with cluster.control(replica, timeout=10.0) as client:
            await client.command(b"hk_batch 1 1 1 4000000000")
    assert rss_bytes(pid) - before_rss < 16 << 20
    assert await positions(cluster) == before
    await assert_alive_and_serving(cluster, replica)


def server_recv_queue(port: int, client_port: int) -> int:
    """Bytes the server has not read from one connection (its socket's Recv-Q), via ss."""
    out = subprocess.run(
        ["ss", "-tnH", "state", "established", f"( sport = :{port} and dport = :{client_port} )"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    return sum(int(line.split()[0]) for line in out.splitlines() if line.strip())


async def test_pipelined_read_amplification_is_bounded_and_paused(
    cluster: StoreCluster,
) -> None:
    require_binary("ss")
    primary = cluster.addresses[0]
    pid = cluster.procs[primary].pid
    assert pid is not None
    await store_value(primary, b"big", b"b" * (512 << 10))
    before_rss = rss_bytes(pid)
    host, _, port = primary.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as attacker:
        attacker.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        attacker.settimeout(5)
        # 40,000 pipelined gets of a 512 KiB item (20 GB of replies), never read.
        requests = b"get big\r\n" * 40_000
        with contextlib.suppress(TimeoutError, OSError):
            attacker.sendall(requests)
        await asyncio.sleep(3.0)
        grown = rss_bytes(pid) - before_rss
        unread = server_recv_queue(int(port), attacker.getsockname()[1])
        # Other clients are served meanwhile.
        await assert_alive_and_serving(cluster, primary)
    assert grown < 64 << 20, f"primary grew by {grown >> 20} MiB"
    # The server stopped reading the attacker's requests: they wait in its socket.
    assert unread > 0
    await assert_alive_and_serving(cluster, primary)


async def test_slowloris_connections_are_capped_then_timed_out(cluster: StoreCluster) -> None:
    primary = cluster.addresses[0]
    host, _, port = primary.rpartition(":")
    idle: list[socket.socket] = []
    try:
        for _ in range(MAX_CONNECTIONS):
            idle.append(socket.create_connection((host, int(port)), timeout=5))
        dribblers = idle[: MAX_CONNECTIONS // 2]
        # One more than the cap: refused at accept, as memcached does.
        with socket.create_connection((host, int(port)), timeout=5) as extra:
            assert read_for(extra, 2.0) == b"ERROR Too many open connections\r\n"
        # A byte at a time keeps half of them active but never completes a request; the
        # other half sends nothing at all.
        for byte in b"get slowly-arriving-key":
            for sock in dribblers:
                with contextlib.suppress(OSError):
                    sock.sendall(bytes([byte]))
            await asyncio.sleep(0.3)
        deadline = time.monotonic() + 4 * (IDLE_TIMEOUT + 1.0)
        for sock in idle:
            assert closed_by_server(sock, max(deadline - time.monotonic(), 0.1))
    finally:
        for sock in idle:
            sock.close()
    await assert_alive_and_serving(cluster, primary)
