"""The primary's streams against in-process fake replicas: batching per loop iteration and
cumulative acknowledgements."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hakeeper.config.secret_file import ClusterSecret, write_secret_file
from hakeeper.sessions import peer_auth
from hakeeper.sessions.node import Node
from hakeeper.sessions.node_config import NodeConfig
from hakeeper.sessions.protocol import MemcacheProtocol
from tests.sessions.test_protocol import FakeTransport

WAIT = 10.0


@dataclass
class FakeReplica:
    """Answers the hello with an empty position of epoch 1; records every batch header."""

    ack_every_batch: bool = True
    batches: list[tuple[int, int]] = field(default_factory=list)
    address: str = ""
    secret: ClusterSecret | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            assert self.secret is not None
            await accept_peer(reader, writer, self.secret)
            while True:
                line = await reader.readuntil(b"\n")
                parts = line.split()
                if parts[0] == b"hk_hello":
                    writer.write(b"POSITION 1 0 1 replica\r\n")
                elif parts[0] == b"hk_batch":
                    await reader.readexactly(int(parts[4]) + 2)
                    first, last = int(parts[2]), int(parts[3])
                    self.batches.append((first, last))
                    if self.ack_every_batch:
                        writer.write(b"ACK %d\r\n" % last)
        writer.close()

    def ack(self, seq: int, writer: asyncio.StreamWriter) -> None:
        writer.write(b"ACK %d\r\n" % seq)


async def accept_peer(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, secret: ClusterSecret
) -> None:
    """The listener's side of the peer handshake, as a replica's peer port runs it."""
    hello = peer_auth.parse_client_hello(await reader.readuntil(b"\n"))
    assert hello is not None
    client_nonce = hello.nonce
    server_nonce = peer_auth.new_nonce()
    writer.write(peer_auth.server_challenge(secret, client_nonce, server_nonce))
    proof = await reader.readuntil(b"\n")
    assert peer_auth.check_client_proof(secret, client_nonce, server_nonce, proof)
    writer.write(peer_auth.OK_LINE)


@contextlib.asynccontextmanager
async def primary_with(replicas: list[FakeReplica]) -> AsyncIterator[Node]:
    scratch = tempfile.TemporaryDirectory()
    secret_file = Path(scratch.name) / "secret"
    secret = write_secret_file(secret_file)
    servers = []
    for fake in replicas:
        fake.secret = secret
        server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        fake.address = f"127.0.0.1:{port}"
        servers.append(server)
    node = Node(
        NodeConfig(
            address="127.0.0.1:1",
            peers=tuple(f.address for f in replicas),
            replicated=True,
            secret_file=secret_file,
        )
    )
    ready = asyncio.Event()
    runner = asyncio.create_task(node.run(ready))
    try:
        await ready.wait()
        assert node.promote(1) == b"OK\r\n"
        yield node
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        for server in servers:
            server.close()
        scratch.cleanup()


async def until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while True:
            if check():
                return
            await asyncio.sleep(0.01)


async def held_until(transport: FakeTransport, expected: bytes) -> None:
    await until(lambda: bytes(transport.written) == expected)


async def first_write_committed(node: Node) -> None:
    conn = MemcacheProtocol(node)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.data_received(b"set warm 0 0 1\r\nx\r\n")
    await held_until(transport, b"STORED\r\n")


async def test_writes_of_one_loop_iteration_reach_each_replica_as_one_batch() -> None:
    replicas = [FakeReplica(), FakeReplica()]
    async with primary_with(replicas) as node:
        await first_write_committed(node)
        seq = node.seq
        await until(lambda: all(fake.batches and fake.batches[-1][1] == seq for fake in replicas))
        for fake in replicas:
            fake.batches.clear()
        clients = []
        for _ in range(10):
            conn = MemcacheProtocol(node)
            transport = FakeTransport()
            conn.connection_made(transport)  # type: ignore[arg-type]
            clients.append((conn, transport))
        first = node.seq + 1
        for index, (conn, _) in enumerate(clients):
            conn.data_received(b"set k%d 0 0 1\r\nv\r\n" % index)
        for _, transport in clients:
            await held_until(transport, b"STORED\r\n")
        # The replica the commit does not wait for is sent the same batch, in the same step.
        await until(lambda: all(fake.batches for fake in replicas))
        for fake in replicas:
            assert fake.batches == [(first, first + 9)]


async def test_writes_commit_while_one_replica_never_acknowledges() -> None:
    silent = FakeReplica(ack_every_batch=False)
    async with primary_with([silent, FakeReplica()]) as node:
        for index in range(20):
            conn = MemcacheProtocol(node)
            transport = FakeTransport()
            conn.connection_made(transport)  # type: ignore[arg-type]
            conn.data_received(b"set k%d 0 0 1\r\nv\r\n" % index)
            await held_until(transport, b"STORED\r\n")


async def test_one_ack_releases_every_reply_it_covers() -> None:
    replicas = [FakeReplica(ack_every_batch=False), FakeReplica(ack_every_batch=False)]
    writers: list[asyncio.StreamWriter] = []
    fake = replicas[0]
    original = fake.handle

    async def keep_writer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await original(reader, writer)

    fake.handle = keep_writer  # type: ignore[method-assign]
    async with primary_with(replicas) as node:
        conns = []
        for index in range(3):
            conn = MemcacheProtocol(node)
            transport = FakeTransport()
            conn.connection_made(transport)  # type: ignore[arg-type]
            conn.data_received(b"set k%d 0 0 1\r\nv\r\n" % index)
            conns.append(transport)
            # Each write in its own loop iteration: three batches in flight, none acked.
            await until(lambda n=index: len(fake.batches) > n)
        assert [bytes(t.written) for t in conns] == [b"", b"", b""]
        fake.ack(fake.batches[-1][1], writers[0])
        for transport in conns:
            await held_until(transport, b"STORED\r\n")
        assert len(fake.batches) == 3


@pytest.mark.parametrize("answer", [b"RESYNC 0\r\n", b"nonsense\r\n"])
async def test_a_refusing_replica_acknowledges_nothing(answer: bytes) -> None:
    replicas = [FakeReplica(ack_every_batch=False), FakeReplica(ack_every_batch=False)]
    writers: list[asyncio.StreamWriter] = []
    for fake in replicas:
        original = fake.handle

        async def keep_writer(
            reader: asyncio.StreamReader,
            writer: asyncio.StreamWriter,
            original: object = original,
        ) -> None:
            writers.append(writer)
            await original(reader, writer)  # type: ignore[operator]

        fake.handle = keep_writer  # type: ignore[method-assign]
    async with primary_with(replicas) as node:
        conn = MemcacheProtocol(node)
        transport = FakeTransport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        conn.data_received(b"set k 0 0 1\r\nv\r\n")
        await until(lambda: all(fake.batches for fake in replicas))
        for writer in writers:
            writer.write(answer)
        await asyncio.sleep(0.3)
        assert bytes(transport.written) == b""
        assert node.commit_seq < node.seq


async def test_reading_resumes_when_the_transport_drains_while_replies_are_held() -> None:
    replicas = [FakeReplica(ack_every_batch=False), FakeReplica(ack_every_batch=False)]
    async with primary_with(replicas) as node:
        conn = MemcacheProtocol(node)
        transport = FakeTransport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        conn.data_received(b"set k 0 0 1\r\nv\r\n")
        assert bytes(transport.written) == b""  # held: nothing acknowledged
        conn.pause_writing()
        assert not transport.reading
        conn.resume_writing()
        assert transport.reading
