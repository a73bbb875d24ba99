"""Header cleaning on raw heads."""

from __future__ import annotations

from hakeeper.balancer.http_wire import clean_head, forwarded_lines


def test_clean_head_drops_hop_by_hop_and_keeps_the_rest() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nServer: n\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n"
        b"Content-Length: 2\r\nUpgrade: h2c\r\n\r\n"
    )
    head, chunked, length, close = clean_head(raw)
    assert head == b"HTTP/1.1 200 OK\r\nServer: n\r\nContent-Length: 2\r\n"
    assert (chunked, length, close) == (False, 2, False)


def test_clean_head_drops_headers_the_connection_header_names() -> None:
    raw = b"HTTP/1.1 200 OK\r\nConnection: X-Secret, close\r\nX-Secret: 1\r\nX-Kept: 2\r\n\r\n"
    head, _, _, close = clean_head(raw)
    assert head == b"HTTP/1.1 200 OK\r\nX-Kept: 2\r\n"
    assert close


def test_clean_head_reports_chunked_case_insensitively() -> None:
    raw = b"HTTP/1.1 200 OK\r\ntransfer-ENCODING: Chunked\r\n\r\n"
    head, chunked, length, _ = clean_head(raw)
    assert head == b"HTTP/1.1 200 OK\r\n"
    assert (chunked, length) == (True, -1)


def test_clean_head_flags_a_repeated_or_bad_length() -> None:
    assert clean_head(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n")[2] == -2
    assert clean_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n")[2] == -2


def test_forwarded_quotes_ipv6() -> None:
    assert forwarded_lines("::1") == (b"::1", b'for="[::1]";proto=http')
    assert forwarded_lines("10.0.0.1") == (b"10.0.0.1", b"for=10.0.0.1;proto=http")


def test_clean_head_removes_every_repeat_of_a_hop_by_hop_header() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nA: 1\r\nConnection: keep-alive\r\n"
        b"Keep-Alive: timeout=5\r\n\r\n"
    )
    assert clean_head(raw)[0] == b"HTTP/1.1 200 OK\r\nA: 1\r\n"
