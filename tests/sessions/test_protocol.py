"""The protocol fed bytes through a fake transport: framing, pipelining, split reads."""

from __future__ import annotations

from typing import Any

from hakeeper.sessions.node import Node
from hakeeper.sessions.node_config import NodeConfig
from hakeeper.sessions.protocol import MemcacheProtocol


class FakeTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False
        self.reading = True

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_reading(self) -> bool:
        return self.reading

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str) -> object:
        return None


def connect() -> tuple[MemcacheProtocol, FakeTransport]:
    node = Node(NodeConfig(address="127.0.0.1:1"))
    protocol = MemcacheProtocol(node)
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport


def feed(protocol: MemcacheProtocol, *chunks: bytes) -> None:
    for chunk in chunks:
        protocol.data_received(chunk)


def test_pipelined_commands_are_answered_in_order_with_one_write() -> None:
    protocol, transport = connect()
    writes: list[Any] = []
    transport.write = writes.append  # type: ignore[method-assign]
    feed(protocol, b"set a 0 0 1\r\n1\r\nset b 0 0 1\r\n2\r\nget a b\r\ndelete a\r\nget a\r\n")
    assert writes == [
        b"STORED\r\nSTORED\r\nVALUE a 0 1\r\n1\r\nVALUE b 0 1\r\n2\r\nEND\r\nDELETED\r\nEND\r\n"
    ]


def test_command_split_across_reads_byte_by_byte() -> None:
    protocol, transport = connect()
    payload = b"set key 3 0 5\r\nhello\r\nget key\r\n"
    feed(protocol, *(payload[i : i + 1] for i in range(len(payload))))
    assert bytes(transport.written) == b"STORED\r\nVALUE key 3 5\r\nhello\r\nEND\r\n"


def test_value_may_contain_crlf() -> None:
    protocol, transport = connect()
    feed(protocol, b"set k 0 0 4\r\n\r\n\r\n\r\nget k\r\n")
    assert bytes(transport.written) == b"STORED\r\nVALUE k 0 4\r\n\r\n\r\n\r\nEND\r\n"


def test_too_large_value_is_swallowed_and_the_next_command_runs() -> None:
    protocol, transport = connect()
    big = 2 * 1024 * 1024
    feed(protocol, b"set k 0 0 %d\r\n" % big, b"x" * big, b"\r\nversion\r\n")
    assert bytes(transport.written) == (
        b"SERVER_ERROR object too large for cache\r\nVERSION 1.6.18\r\n"
    )


def test_line_too_long_without_newline_closes_only_this_connection() -> None:
    protocol, transport = connect()
    feed(protocol, b"z" * 5000)
    assert transport.closed


def test_quit_closes_and_ignores_the_rest() -> None:
    protocol, transport = connect()
    feed(protocol, b"quit\r\nversion\r\n")
    assert transport.closed
    assert transport.written == b""


def test_noreply_storage_writes_nothing_back() -> None:
    protocol, transport = connect()
    feed(protocol, b"set k 0 0 1 noreply\r\nv\r\nget k\r\n")
    assert bytes(transport.written) == b"VALUE k 0 1\r\nv\r\nEND\r\n"


def test_client_not_reading_its_replies_is_not_read_from() -> None:
    protocol, transport = connect()
    paused: list[bool] = []

    def pause() -> None:
        paused.append(True)
        transport.reading = False

    def resume() -> None:
        paused.append(False)
        transport.reading = True

    transport.pause_reading = pause  # type: ignore[method-assign]
    transport.resume_reading = resume  # type: ignore[method-assign]
    protocol.pause_writing()
    protocol.resume_writing()
    assert paused == [True, False]


def test_set_whose_data_arrives_in_a_later_read_is_stored() -> None:
    protocol, transport = connect()
    feed(protocol, b"set k 7 0 5\r\nhel", b"lo\r\nget k\r\n")
    assert bytes(transport.written) == b"STORED\r\nVALUE k 7 5\r\nhello\r\nEND\r\n"


def test_value_spread_over_many_reads_is_stored_whole() -> None:
    protocol, transport = connect()
    value = bytes(range(256)) * 64
    chunks = [value[i : i + 1000] for i in range(0, len(value), 1000)]
    feed(protocol, b"set k 0 0 %d\r\n" % len(value), *chunks, b"\r\nget k\r\n")
    assert bytes(transport.written) == (
        b"STORED\r\nVALUE k 0 %d\r\n%s\r\nEND\r\n" % (len(value), value)
    )


def test_partial_line_then_rest_is_one_command() -> None:
    protocol, transport = connect()
    feed(protocol, b"set k 0 0 1\r\nv\r\nge", b"t k\r\n")
    assert bytes(transport.written) == b"STORED\r\nVALUE k 0 1\r\nv\r\nEND\r\n"
