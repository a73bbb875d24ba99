"""A connection's bounds in-process: hk_* on the client port, block sizes, output
back-pressure, the connection cap, idle and slow requests, hello addresses, upstream errors."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from hakeeper.config.secret_file import write_secret_file
from hakeeper.sessions.node import Node
from hakeeper.sessions.node_config import NodeConfig
from hakeeper.sessions.protocol import OUTPUT_LIMIT, MemcacheProtocol
from tests.sessions.test_protocol import FakeTransport

PEERS = ("127.0.0.2:1", "127.0.0.3:1")


def open_conn(node: Node, *, peer: bool = False) -> tuple[MemcacheProtocol, FakeTransport]:
    conn = MemcacheProtocol(node, peer=peer)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


def replica_node() -> Node:
    return Node(NodeConfig(address="127.0.0.1:1", peers=PEERS, replicated=True))


def test_client_connection_answers_hk_commands_error_and_changes_nothing() -> None:
    node = replica_node()
    conn, transport = open_conn(node)
    conn.data_received(b"hk_fence 9\r\nhk_position\r\nhk_dump\r\n")
    assert bytes(transport.written) == b"ERROR\r\n" * 3
    assert node.seen_epoch == 0


def test_peer_connection_refuses_an_oversized_block_from_its_header() -> None:
    node = replica_node()
    conn, transport = open_conn(node, peer=True)
    conn.data_received(b"hk_batch 1 1 1 4000000000\r\n" + b"x" * 1000)
    assert bytes(transport.written).startswith(b"SERVER_ERROR stream block larger")
    assert transport.closed
    assert len(conn._buf) == 0


def test_hello_from_an_address_outside_the_peers_is_refused() -> None:
    node = replica_node()
    conn, transport = open_conn(node, peer=True)
    conn.data_received(b"hk_hello 3 10.9.9.9:1\r\nhk_hello 3 \xff\xfe:99999999\r\n")
    assert bytes(transport.written) == (
        b"CLIENT_ERROR hk_hello from an address not in --peers\r\n" * 2
    )
    assert node.primary_address is None
    assert node.seen_epoch == 0


async def test_forward_to_an_unusable_primary_address_answers_an_error(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    write_secret_file(secret_file)
    config = NodeConfig(
        address="127.0.0.1:1",
        peers=PEERS,
        replicated=True,
        forward_timeout=2.0,
        secret_file=secret_file,
    )
    node = Node(config)
    conn, transport = open_conn(node)
    ready = asyncio.Event()
    runner = asyncio.create_task(node.run(ready))
    try:
        await ready.wait()
        # Not reachable through hk_hello any more; set directly to exercise every error path.
        for address in ("no-port", "127.0.0.1:99999999", "bad\udcff:1"):
            transport.written.clear()
            node.primary_address = address
            conn.data_received(b"set k 0 0 1\r\nv\r\n")
            for _ in range(200):
                if transport.written:
                    break
                await asyncio.sleep(0.01)
            assert bytes(transport.written).startswith(b"SERVER_ERROR primary")
        assert not runner.done()
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


async def test_pipelined_gets_stop_at_the_output_bound_and_resume_when_written() -> None:
    node = Node(NodeConfig(address="127.0.0.1:1"))
    conn, transport = open_conn(node)
    value = b"b" * (512 << 10)
    conn.data_received(b"set big 0 0 %d\r\n%s\r\n" % (len(value), value))
    transport.written.clear()
    gets = 100
    conn.data_received(b"get big\r\n" * gets)
    first = transport.written.count(b"VALUE big")
    # One read built at most the bound (plus the reply that crossed it), then stopped reading.
    assert first * len(value) <= OUTPUT_LIMIT + len(value)
    assert not transport.reading
    for _ in range(gets):
        conn.pause_writing()
        conn.resume_writing()
        await asyncio.sleep(0)
        if transport.written.count(b"VALUE big") == gets:
            break
    assert transport.written.count(b"VALUE big") == gets
    assert transport.reading


def test_connection_beyond_max_connections_is_told_and_closed() -> None:
    node = Node(NodeConfig(address="127.0.0.1:1", max_connections=2))
    first = [open_conn(node) for _ in range(2)]
    conn, transport = open_conn(node)
    assert bytes(transport.written) == b"ERROR Too many open connections\r\n"
    assert transport.closed
    conn.connection_lost(None)
    # Peers are not counted against the clients' cap.
    _, peer_transport = open_conn(node, peer=True)
    assert not peer_transport.closed
    first[0][0].connection_lost(None)
    _, again = open_conn(node)
    assert not again.closed


def test_idle_client_is_closed_after_the_idle_timeout() -> None:
    node = Node(NodeConfig(address="127.0.0.1:1"))
    conn, transport = open_conn(node)
    conn.sweep(100.0, idle_timeout=300.0, request_timeout=30.0)  # active since opened
    conn.sweep(399.0, idle_timeout=300.0, request_timeout=30.0)
    assert not transport.closed
    conn.sweep(401.0, idle_timeout=300.0, request_timeout=30.0)
    assert transport.closed


def test_request_arriving_a_byte_at_a_time_is_closed_after_the_request_timeout() -> None:
    node = Node(NodeConfig(address="127.0.0.1:1"))
    conn, transport = open_conn(node)
    started = node.now
    for step, byte in enumerate(b"get slo"):
        conn.data_received(bytes([byte]))
        conn.sweep(started + step, idle_timeout=300.0, request_timeout=30.0)
    assert not transport.closed
    conn.sweep(started + 31.0, idle_timeout=300.0, request_timeout=30.0)
    assert transport.closed
