"""The peer port's handshake on real sockets: both sides prove the secret, rotation works."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hakeeper.config.secret_file import ClusterSecret, SecretFile, write_secret_file
from hakeeper.model.wire_version import VersionRange
from hakeeper.sessions import peer_auth
from hakeeper.sessions.node import Node
from hakeeper.sessions.node_config import NodeConfig
from hakeeper.sessions.peer_auth import PeerAuthError, open_peer
from hakeeper.sessions.peer_gate import PeerGate
from hakeeper.sessions.position import Position

PEERS = ("127.0.0.2:1", "127.0.0.3:1")


class LineReader(asyncio.Protocol):
    """What the connector gets once the handshake is over: every byte the node answers."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.line = asyncio.Event()
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received += data
        if b"\n" in self.received:
            self.line.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


@contextlib.asynccontextmanager
async def peer_port(secret_file: Path) -> AsyncIterator[tuple[Node, str]]:
    node = Node(
        NodeConfig(address="127.0.0.1:1", peers=PEERS, replicated=True, secret_file=secret_file)
    )
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: PeerGate(node), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield node, f"127.0.0.1:{port}"
    finally:
        server.close()


async def handshakes_done(node: Node) -> None:
    """The node saw the connections close (its side of a close arrives a little later)."""
    for _ in range(500):
        if node.pending_peers == 0:
            return
        await asyncio.sleep(0.01)


async def ask(reader: LineReader, line: bytes) -> bytes:
    assert reader.transport is not None
    reader.received.clear()
    reader.line.clear()
    reader.transport.write(line)
    async with asyncio.timeout(5):
        await reader.line.wait()
    return bytes(reader.received)


async def test_a_peer_with_the_secret_gets_the_control_commands(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    write_secret_file(secret_file)
    async with peer_port(secret_file) as (node, address):
        reader = await open_peer(address, SecretFile(secret_file), LineReader, 5.0)
        reply = await ask(reader, b"hk_fence 7\r\n")
        assert Position.parse(reply).seen_epoch == 7
        assert node.seen_epoch == 7
        assert reader.transport is not None
        reader.transport.close()


async def test_a_peer_with_another_secret_is_refused_and_changes_nothing(
    tmp_path: Path,
) -> None:
    secret_file = tmp_path / "secret"
    write_secret_file(secret_file)
    other = tmp_path / "other"
    write_secret_file(other)
    async with peer_port(secret_file) as (node, address):
        with pytest.raises(PeerAuthError, match="did not prove the cluster secret"):
            await open_peer(address, SecretFile(other), LineReader, 5.0)
        assert node.seen_epoch == 0
        await handshakes_done(node)
        assert node.pending_peers == 0


async def test_rotation_accepts_the_old_secret_while_both_are_listed(tmp_path: Path) -> None:
    old_file = tmp_path / "old"
    old = write_secret_file(old_file)
    rotated = tmp_path / "rotated"
    new = write_secret_file(tmp_path / "new")
    # The node proves with the new secret and still accepts the old one.
    rotated.write_text(new.current.decode() + "\n" + old.current.decode() + "\n")
    rotated.chmod(0o600)
    both = tmp_path / "both"
    both.write_text(old.current.decode() + "\n" + new.current.decode() + "\n")
    both.chmod(0o600)
    async with peer_port(rotated) as (_, address):
        # A peer still proving with the old secret, accepting both.
        reader = await open_peer(address, SecretFile(both), LineReader, 5.0)
        assert (await ask(reader, b"hk_position\r\n")).startswith(b"POSITION")
        assert reader.transport is not None
        reader.transport.close()


async def test_handshake_line_too_long_closes_the_connection(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    write_secret_file(secret_file)
    async with peer_port(secret_file) as (node, address):
        host, _, port = address.rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"x" * 4096)
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        writer.close()
        await handshakes_done(node)
        assert node.pending_peers == 0


async def raw_hello(address: str, hello: bytes) -> tuple[bytes, bytes]:
    """Send one hello on a raw connection: (the node's answer line, what followed it)."""
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(hello)
        async with asyncio.timeout(5):
            return await reader.readline(), await reader.read()
    finally:
        writer.close()


async def test_an_offer_of_a_wider_version_range_agrees_on_the_highest_common_one(
    tmp_path: Path,
) -> None:
    secret_file = tmp_path / "secret"
    write_secret_file(secret_file)
    async with peer_port(secret_file) as (node, address):
        hello = peer_auth.client_hello(peer_auth.new_nonce(), VersionRange(1, 3))
        host, _, port = address.rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(hello)
        async with asyncio.timeout(5):
            answer = await reader.readline()
        writer.close()
        assert answer.startswith(b"HK_AUTH %d " % peer_auth.WIRE.newest)
        await handshakes_done(node)


async def test_an_offer_sharing_no_version_is_answered_with_the_range_and_closed(
    tmp_path: Path,
) -> None:
    secret_file = tmp_path / "secret"
    write_secret_file(secret_file)
    async with peer_port(secret_file) as (node, address):
        future = peer_auth.client_hello(peer_auth.new_nonce(), VersionRange(200, 255))
        answer, rest = await raw_hello(address, future)
        assert answer == b"HK_VERSION %d\r\n" % peer_auth.WIRE.newest
        assert rest == b"", "the node kept talking after refusing the version"
        await handshakes_done(node)
        assert node.pending_peers == 0
        # The port still serves a peer that speaks its version.
        reader = await open_peer(address, SecretFile(secret_file), LineReader, timeout=5.0)
        assert reader.transport is not None
        reader.transport.close()


def test_a_connector_told_the_version_is_refused_says_which_side_to_upgrade() -> None:
    secret = ClusterSecret((b"s" * 32,))
    with pytest.raises(PeerAuthError) as refused:
        peer_auth.check_server_challenge(
            secret, peer_auth.new_nonce(), b"HK_VERSION 1\r\n", VersionRange(2, 3)
        )
    assert "session peer wire versions do not overlap" in str(refused.value)
    assert "upgrade the peer" in str(refused.value)
