"""The clients' requests and reply parsers, without I/O (both clients use them)."""

from __future__ import annotations

from collections.abc import Generator
from typing import TypeVar

import pytest

from hakeeper.sessions import client_codec as codec
from hakeeper.sessions.client_codec import LINE, ErrorReply, MalformedReply, Value

T = TypeVar("T")
ADDRESS = "127.0.0.1:11211"


def parse(parser: Generator[int, bytes, T], data: bytes) -> T:
    """Drive ``parser`` over ``data`` as a client would over its reads; all must be used."""
    need = next(parser)
    pos = 0
    while True:
        if need == LINE:
            end = data.index(b"\n", pos) + 1
        else:
            end = pos + need
            assert end <= len(data), "the parser asked for more bytes than the reply holds"
        chunk, pos = data[pos:end], end
        try:
            need = parser.send(chunk)
        except StopIteration as done:
            assert pos == len(data), "the parser stopped before the end of the reply"
            result: T = done.value
            return result


def test_storage_request_carries_flags_exptime_length_and_data() -> None:
    request = codec.storage_request(b"set", b"k", b"hello", exptime=60, flags=3)
    assert request == b"set k 3 60 5\r\nhello\r\n"


def test_cas_request_puts_the_unique_after_the_length() -> None:
    request = codec.storage_request(b"cas", b"k", b"v", unique=42)
    assert request == b"cas k 0 0 1 42\r\nv\r\n"


def test_auth_request_is_a_set_whose_data_is_the_credentials() -> None:
    assert codec.auth_request(b"user pw") == b"set auth 0 0 7\r\nuser pw\r\n"


def test_retrieval_request_names_the_command_and_key() -> None:
    assert codec.retrieval_request(b"gets", b"k") == b"gets k\r\n"


def test_command_request_ends_the_line_with_crlf() -> None:
    assert codec.command_request(b"touch k 10") == b"touch k 10\r\n"


def test_adopt_request_frames_the_payload_with_its_length() -> None:
    assert codec.adopt_request(3, 17, b"abc") == b"hk_adopt 3 17 3\r\nabc\r\n"


def test_line_reply_is_the_line_without_its_end() -> None:
    assert parse(codec.line_reply(ADDRESS), b"STORED\r\n") == b"STORED"


def test_error_line_raises_naming_the_server_and_the_reply() -> None:
    with pytest.raises(
        ErrorReply, match=r"127\.0\.0\.1:11211 answered 'SERVER_ERROR out of memory'"
    ):
        parse(codec.line_reply(ADDRESS), b"SERVER_ERROR out of memory\r\n")


def test_values_reply_collects_each_value_with_its_flags() -> None:
    reply = b"VALUE a 5 2\r\nhi\r\nVALUE b 0 0\r\n\r\nEND\r\n"
    values = parse(codec.values_reply(ADDRESS), reply)
    assert values == {b"a": Value(b"hi", 5, None), b"b": Value(b"", 0, None)}


def test_values_reply_of_gets_carries_the_cas_unique() -> None:
    values = parse(codec.values_reply(ADDRESS), b"VALUE a 0 1 99\r\nx\r\nEND\r\n")
    assert values[b"a"].cas == 99


def test_value_data_may_hold_line_ends() -> None:
    values = parse(codec.values_reply(ADDRESS), b"VALUE a 0 4\r\n\r\n\r\n\r\nEND\r\n")
    assert values[b"a"].data == b"\r\n\r\n"


def test_values_reply_of_a_miss_is_empty() -> None:
    assert parse(codec.values_reply(ADDRESS), b"END\r\n") == {}


def test_values_reply_raises_on_an_error_line() -> None:
    with pytest.raises(ErrorReply):
        parse(codec.values_reply(ADDRESS), b"CLIENT_ERROR bad command line format\r\n")


def test_values_reply_refuses_a_line_that_is_not_a_value() -> None:
    with pytest.raises(MalformedReply, match="bad reply"):
        parse(codec.values_reply(ADDRESS), b"STORED\r\n")


def test_values_reply_refuses_a_length_that_is_not_a_number() -> None:
    with pytest.raises(MalformedReply, match="bad reply"):
        parse(codec.values_reply(ADDRESS), b"VALUE a 0 x\r\n")


def test_values_reply_refuses_a_value_not_followed_by_a_line_end() -> None:
    with pytest.raises(MalformedReply, match="not framed"):
        parse(codec.values_reply(ADDRESS), b"VALUE a 0 1\r\nxyz\r\nEND\r\n")


def test_dump_reply_gives_the_epoch_seq_and_payload() -> None:
    reply = b"SNAP 2 40 3\r\nabc\r\n"
    assert parse(codec.dump_reply(ADDRESS), reply) == (2, 40, b"abc")


def test_dump_reply_refuses_another_header() -> None:
    with pytest.raises(MalformedReply, match="bad dump"):
        parse(codec.dump_reply(ADDRESS), b"VALUE a 0 1\r\n")
