"""The request head the L7 relay sends upstream, from the fast path and from parsed fields."""

from __future__ import annotations

import pytest

from hakeeper.balancer.http_request import (
    NOT_FORWARDED,
    Forwarding,
    HeaderTooLarge,
    Request,
    forward_head,
    plain_request,
)

LIMIT = 8192


def parsed(
    headers: list[tuple[bytes, bytes]],
    forwarding: Forwarding = NOT_FORWARDED,
    cookie: str | None = None,
    limit: int = LIMIT,
) -> Request:
    req = Request()
    req.method = b"GET"
    forward_head(req, b"/p", headers, forwarding, cookie, limit)
    return req


def test_forwarding_of_a_peer_ends_each_head_with_its_address() -> None:
    forwarding = Forwarding.of("10.0.0.1")
    assert forwarding.tail == (
        b"X-Forwarded-For: 10.0.0.1\r\nForwarded: for=10.0.0.1;proto=http\r\n\r\n"
    )
    assert NOT_FORWARDED.tail == b"\r\n"


def test_plain_request_is_forwarded_as_it_came_with_the_tail() -> None:
    req = plain_request(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n", b"X: 1\r\n\r\n", None, LIMIT)
    assert req is not None
    assert req.head == b"GET /a HTTP/1.1\r\nHost: h\r\nX: 1\r\n\r\n"
    assert (req.idempotent, req.complete, req.keep_alive, req.http10) == (True, True, True, False)


def test_plain_http10_request_goes_up_as_1_1_without_keep_alive() -> None:
    req = plain_request(b"GET / HTTP/1.0\r\n\r\n", b"\r\n", None, LIMIT)
    assert req is not None
    assert req.head == b"GET / HTTP/1.1\r\n\r\n"
    assert (req.http10, req.keep_alive) == (True, False)


@pytest.mark.parametrize(
    "data",
    [
        b"POST / HTTP/1.1\r\n\r\n",  # may have a body
        b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",  # hop-by-hop field
        b"GET / HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",  # the client's own chain
        b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n",  # pipelined
        b"GET / HTTP/1.1\r\nHost: h\r\n",  # split read
    ],
)
def test_request_needing_the_parser_is_not_plain(data: bytes) -> None:
    assert plain_request(data, b"\r\n", None, LIMIT) is None


def test_cookie_makes_a_request_not_plain_only_for_a_sticky_backend() -> None:
    data = b"GET / HTTP/1.1\r\nCookie: srv=a\r\n\r\n"
    assert plain_request(data, b"\r\n", None, LIMIT) is not None
    assert plain_request(data, b"\r\n", "srv", LIMIT) is None


def test_plain_request_over_the_header_limit_is_left_to_the_parser() -> None:
    data = b"GET / HTTP/1.1\r\nX: " + b"x" * 100 + b"\r\n\r\n"
    assert plain_request(data, b"\r\n", None, 50) is None


def test_forwarded_head_drops_hop_by_hop_and_the_fields_connection_names() -> None:
    req = parsed([(b"Host", b"h"), (b"Connection", b"X-Secret"), (b"X-Secret", b"1")])
    assert req.head == b"GET /p HTTP/1.1\r\nHost: h\r\n\r\n"


def test_forwarded_head_appends_the_client_to_its_own_chain() -> None:
    req = parsed(
        [(b"X-Forwarded-For", b"1.1.1.1"), (b"Forwarded", b"for=1.1.1.1")],
        Forwarding.of("10.0.0.1"),
    )
    assert req.head == (
        b"GET /p HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1, 10.0.0.1\r\n"
        b"Forwarded: for=1.1.1.1, for=10.0.0.1;proto=http\r\n\r\n"
    )


def test_forwarded_head_keeps_the_clients_chain_when_not_forwarding() -> None:
    req = parsed([(b"X-Forwarded-For", b"1.1.1.1")])
    assert req.head == b"GET /p HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n"


def test_forwarded_head_reframes_a_chunked_body() -> None:
    req = parsed([(b"Transfer-Encoding", b"gzip, chunked")])
    assert req.head == b"GET /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert (req.chunked, req.complete) == (True, False)


def test_forwarded_head_with_a_length_expects_a_body() -> None:
    assert not parsed([(b"Content-Length", b"3")]).complete
    assert parsed([(b"Content-Length", b"0")]).complete


def test_forwarded_head_reads_the_stickiness_cookie() -> None:
    req = parsed([(b"Cookie", b"a=1; srv=web2")], cookie="srv")
    assert req.sticky == "web2"
    assert req.head == b"GET /p HTTP/1.1\r\nCookie: a=1; srv=web2\r\n\r\n"


def test_forwarded_head_over_the_limit_raises() -> None:
    with pytest.raises(HeaderTooLarge):
        parsed([(b"X", b"x" * 100)], limit=50)
