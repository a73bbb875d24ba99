"""Fuzzing the L7 path: any bytes from a client or a server leave the worker standing.

The protocol objects are fed directly with fake transports (no sockets), so hypothesis can
try thousands of inputs quickly. Whatever comes in, nothing raises out of ``data_received``
and whatever reaches the client is an HTTP/1.1 response (or nothing).
"""

from __future__ import annotations

import httptools
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.balancer.conftest import wire

REQUEST_PARTS = st.sampled_from(
    [
        b"GET / HTTP/1.1\r\n",
        b"POST /x HTTP/1.1\r\n",
        b"Host: a\r\n",
        b"Content-Length: 3\r\n",
        b"Content-Length: -1\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"Connection: close\r\n",
        b"Connection: upgrade\r\nUpgrade: websocket\r\n",
        b"\r\n",
        b"abc",
        b"3\r\nabc\r\n0\r\n\r\n",
        b"zz\r\n",
        b"\x00\xff",
        b" ",
    ]
)


def client_input() -> st.SearchStrategy[list[bytes]]:
    return st.lists(st.one_of(REQUEST_PARTS, st.binary(max_size=40)), max_size=12)


def looks_like_responses(written: list[bytes]) -> bool:
    data = b"".join(written)
    return data == b"" or data.startswith(b"HTTP/1.1 ")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=client_input())
def test_any_client_bytes_leave_the_relay_standing(chunks: list[bytes]) -> None:
    client, client_transport, _, rt = wire()
    for data in chunks:
        client.data_received(data)
    rt.batch.flush()
    assert looks_like_responses(client_transport.written)


RESPONSE_PARTS = st.sampled_from(
    [
        b"HTTP/1.1 200 OK\r\n",
        b"HTTP/1.0 204 No Content\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"Content-Length: 2\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"Connection: close\r\n",
        b"\r\n",
        b"ok",
        b"2\r\nok\r\n0\r\n\r\n",
        b"NOT HTTP\r\n",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=st.lists(st.one_of(RESPONSE_PARTS, st.binary(max_size=40)), max_size=12))
def test_any_server_bytes_leave_the_relay_standing(chunks: list[bytes]) -> None:
    client, client_transport, _, rt = wire()
    client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    upstream = client.upstream
    assert upstream is not None
    for data in chunks:
        if upstream.client is None:
            break
        upstream.data_received(data)
    rt.batch.flush()
    assert looks_like_responses(client_transport.written)


TOKEN = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1)
FIELD_NAME = st.one_of(
    TOKEN, st.sampled_from(["Host", "Cookie", "Connection", "TE", "Forwarded", "X-Te"])
)
FIELD_VALUE = st.text("".join(map(chr, range(0x21, 0x7F))) + " ", max_size=20).map(str.strip)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["GET", "HEAD", "DELETE", "OPTIONS", "POST"]),
    target=st.text("".join(map(chr, range(0x21, 0x7F))), min_size=1, max_size=20),
    minor=st.sampled_from(["0", "1"]),
    fields=st.lists(st.tuples(FIELD_NAME, FIELD_VALUE), max_size=5),
)
def test_plain_request_goes_upstream_as_the_parser_would_send_it(
    method: str, target: str, minor: str, fields: list[tuple[str, str]]
) -> None:
    lines = "".join(f"{name}: {value}\r\n" for name, value in fields)
    data = f"{method} /{target} HTTP/1.{minor}\r\n{lines}\r\n".encode()
    fast, _, fast_upstream, fast_rt = wire()
    fast.data_received(data)
    fast_rt.batch.flush()
    parsed, _, parsed_upstream, parsed_rt = wire()
    try:
        parsed.parser.feed_data(data)  # the parser path alone
    except httptools.HttpParserError:
        assert not fast.queue, "the fast path took a request the parser refuses"
        return
    parsed_rt.batch.flush()
    assert fast_upstream.written == parsed_upstream.written
    assert [r.keep_alive for r in fast.queue] == [r.keep_alive for r in parsed.queue]
