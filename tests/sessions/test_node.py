"""A node's stream rules in-process: fencing by epoch, batches in sequence, snapshots."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from hakeeper.sessions import entries
from hakeeper.sessions import node as node_module
from hakeeper.sessions.node import Node
from hakeeper.sessions.node_config import NodeConfig
from hakeeper.sessions.position import Position, Role, most_up_to_date
from hakeeper.sessions.protocol import MemcacheProtocol
from tests.sessions.test_protocol import FakeTransport

PEERS = ("127.0.0.2:1", "127.0.0.3:1")


def replica(epoch: int = 0) -> tuple[Node, MemcacheProtocol, FakeTransport]:
    node = Node(NodeConfig(address="127.0.0.1:1", peers=PEERS, replicated=True, start_epoch=epoch))
    conn = MemcacheProtocol(node, peer=True)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return node, conn, transport


def send(conn: MemcacheProtocol, transport: FakeTransport, data: bytes) -> bytes:
    transport.written.clear()
    conn.data_received(data)
    return bytes(transport.written)


def batch(epoch: int, first: int, payload_entries: list[bytes]) -> bytes:
    payload = b"".join(payload_entries)
    last = first + len(payload_entries) - 1
    return b"hk_batch %d %d %d %d\r\n%s\r\n" % (epoch, first, last, len(payload), payload)


def test_hello_from_an_older_epoch_is_refused() -> None:
    _, conn, transport = replica(epoch=5)
    assert send(conn, transport, b"hk_hello 4 127.0.0.2:1\r\n") == b"STALE 5\r\n"


def test_fence_raises_the_epoch_and_reports_the_position() -> None:
    node, conn, transport = replica()
    reply = send(conn, transport, b"hk_fence 7\r\n")
    assert Position.parse(reply) == Position(0, 0, 7, Role.REPLICA)
    assert send(conn, transport, b"hk_hello 6 127.0.0.2:1\r\n") == b"STALE 7\r\n"
    assert node.seen_epoch == 7


def test_snapshot_then_batches_in_sequence_are_applied_and_acked() -> None:
    node, conn, transport = replica()
    send(conn, transport, b"hk_hello 2 127.0.0.2:1\r\n")
    snap = entries.encode_put(b"a", b"1", 0, 0.0, 10)
    assert send(conn, transport, b"hk_snap 2 40 %d\r\n%s\r\n" % (len(snap), snap)) == b"ACK 40\r\n"
    put = entries.encode_put(b"b", b"2", 3, 0.0, 11)
    assert send(conn, transport, batch(2, 41, [put, entries.NOOP_ENTRY])) == b"ACK 42\r\n"
    assert node.position() == Position(2, 42, 2, Role.REPLICA)
    item = node.store.get(b"b")
    assert item is not None
    assert (item.value, item.flags, item.cas) == (b"2", 3, 11)


def test_batch_split_across_reads_is_applied_like_a_batch_in_one_read() -> None:
    puts = [entries.encode_put(b"k%d" % i, b"v%d" % i, i, 0.0, 20 + i) for i in range(3)]
    whole = batch(2, 1, puts)
    results = []
    for chunks in ([whole], [whole[:5], whole[5:30], whole[30:]]):
        node, conn, transport = replica()
        send(conn, transport, b"hk_hello 2 127.0.0.2:1\r\n")
        assert send(conn, transport, b"hk_snap 2 0 0\r\n\r\n") == b"ACK 0\r\n"
        replies = b"".join(send(conn, transport, chunk) for chunk in chunks)
        results.append((replies, node.position(), sorted(node.store.items())))
    assert results[0] == results[1]
    assert results[0][0] == b"ACK 3\r\n"


def test_batch_with_a_gap_asks_for_resync() -> None:
    _, conn, transport = replica()
    send(conn, transport, b"hk_hello 1 127.0.0.2:1\r\n")
    send(conn, transport, b"hk_snap 1 5 0\r\n\r\n")
    assert send(conn, transport, batch(1, 7, [entries.NOOP_ENTRY])) == b"RESYNC 5\r\n"


def test_batch_from_an_older_epoch_is_refused() -> None:
    _, conn, transport = replica()
    send(conn, transport, b"hk_hello 3 127.0.0.2:1\r\n")
    assert send(conn, transport, batch(2, 1, [entries.NOOP_ENTRY])) == b"STALE 3\r\n"


def test_corrupt_batch_asks_for_resync_and_keeps_the_connection() -> None:
    _, conn, transport = replica()
    send(conn, transport, b"hk_hello 1 127.0.0.2:1\r\n")
    send(conn, transport, b"hk_snap 1 0 0\r\n\r\n")
    assert send(conn, transport, b"hk_batch 1 1 1 3\r\nabc\r\n") == b"RESYNC 0\r\n"
    assert send(conn, transport, b"version\r\n") == b"VERSION 1.6.18\r\n"


async def test_replica_holds_writes_until_a_primary_is_known_then_errors() -> None:
    config = NodeConfig(address="127.0.0.1:1", peers=PEERS, replicated=True, forward_timeout=0.3)
    node = Node(config)
    conn = MemcacheProtocol(node)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    ready = asyncio.Event()
    runner = asyncio.create_task(node.run(ready))
    try:
        await ready.wait()
        conn.data_received(b"set k 0 0 1\r\nv\r\nversion\r\n")
        assert transport.written == b""
        for _ in range(50):
            if transport.written:
                break
            await asyncio.sleep(0.05)
        assert bytes(transport.written) == (
            b"SERVER_ERROR no primary known to this replica\r\nVERSION 1.6.18\r\n"
        )
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


def test_promotion_chooses_highest_epoch_then_seq() -> None:
    positions = {
        "a": Position(3, 100, 4, Role.REPLICA),
        "b": Position(4, 10, 4, Role.REPLICA),
        "c": Position(4, 12, 4, Role.REPLICA),
    }
    assert most_up_to_date(positions) == "c"


def test_entries_round_trip() -> None:
    encoded = [
        entries.encode_put(b"k", b"v" * 300, 7, 1.5e9, 99),
        entries.encode_delete(b"gone"),
        entries.encode_flush(0.0),
        entries.NOOP_ENTRY,
    ]
    decoded = entries.decode(b"".join(encoded))
    assert [e[0] for e in decoded] == [
        entries.OP_PUT,
        entries.OP_DELETE,
        entries.OP_FLUSH,
        entries.OP_NOOP,
    ]
    _, key, flags, _, cas, value = decoded[0]
    assert (key, value, flags, cas) == (
        b"k",
        b"v" * 300,
        7,
        99,
    )


def test_standalone_node_refuses_a_replication_stream() -> None:
    node = Node(NodeConfig(address="127.0.0.1:1"))
    conn = MemcacheProtocol(node, peer=True)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    reply = send(conn, transport, batch(0, 1, [entries.encode_put(b"k", b"v", 0, 0.0, 1)]))
    assert reply.startswith(b"SERVER_ERROR standalone")
    assert node.store.get(b"k") is None


async def test_log_stays_within_its_byte_bound_when_no_replica_acknowledges(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(node_module, "LOG_KEEP_BYTES", 10_000)
    # Peers that refuse connections: nothing is ever acknowledged.
    node = Node(
        NodeConfig(address="127.0.0.1:1", peers=("127.0.0.1:9", "127.0.0.1:10"), replicated=True)
    )
    ready = asyncio.Event()
    runner = asyncio.create_task(node.run(ready))
    try:
        await ready.wait()
        assert node.promote(1) == b"OK\r\n"
        conn = MemcacheProtocol(node)
        conn.connection_made(FakeTransport())  # type: ignore[arg-type]
        for index in range(200):
            conn.data_received(b"set k%d 0 0 1000 noreply\r\n%s\r\n" % (index, b"x" * 1000))
        # 200 kB were written; at most 10 kB of it may still be kept for replicas.
        assert node.entries_after(node.seq - 11, 1 << 30) is None
        assert node.seq >= 200
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
