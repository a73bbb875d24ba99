"""HTTP/1.1 wire details the L7 relay needs: hop-by-hop names, canned error responses."""

from __future__ import annotations

import re
from http import HTTPStatus

# RFC 9110 section 7.6.1 plus the historic proxy ones; never forwarded either way.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

# Safe to send twice: replayed on another server if the first one failed before answering.
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"TRACE"})

# Requests whose body is kept for a replay; larger ones are streamed and not replayed.
REPLAY_LIMIT = 65536


def _error(status: int) -> bytes:
    phrase = HTTPStatus(status).phrase
    body = f"{status} {phrase}\n".encode()
    return (
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


ERRORS: dict[int, bytes] = {s: _error(s) for s in (400, 408, 431, 502, 503, 504)}

_STATUS_LINES: dict[tuple[int, bytes], bytes] = {}


def status_line(code: int, reason: bytes) -> bytes:
    key = (code, reason)
    line = _STATUS_LINES.get(key)
    if line is None:
        line = b"HTTP/1.1 %d %s\r\n" % (code, reason)
        if len(_STATUS_LINES) < 512:
            _STATUS_LINES[key] = line
    return line


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


def forwarded_lines(peer_host: str) -> tuple[bytes, bytes]:
    """The client's address as an X-Forwarded-For element and a Forwarded element."""
    node = f'"[{peer_host}]"' if ":" in peer_host else peer_host
    return peer_host.encode(), f"for={node};proto=http".encode()


# One C-level pass finds every header the relay must look at (framing and hop-by-hop). Field
# names are matched without whitespace before the colon, which httptools refuses anyway.
_FIELDS = re.compile(
    rb"\r\n(content-length|connection|keep-alive|proxy-connection|te|trailer|transfer-encoding"
    rb"|upgrade):[ \t]*([^\r\n]*)"
)


def clean_head(raw: bytes) -> tuple[bytes, bool, int, bool]:
    """A raw head (status or request line, headers, blank line) without hop-by-hop headers.

    Returns the head up to and including the last header's CRLF (the caller appends its own
    lines and the blank line), whether the body was chunked, the Content-Length (-1 when
    absent, -2 when repeated or unreadable) and whether ``Connection: close`` was said.
    Headers named by a ``Connection`` header go too. This runs once per response on the hot
    path: one regex pass over a lowered copy, then slicing.
    """
    low = raw.lower()
    length = -1
    chunked = close = False
    cut: list[bytes] = []
    for name, value in _FIELDS.findall(low):
        if name == b"content-length":
            length = int(value) if length == -1 and value.isdigit() else -2
            continue
        cut.append(name)
        if name == b"transfer-encoding":
            chunked = value.find(b"chunked") >= 0
        elif name == b"connection" and value != b"keep-alive":
            tokens = [t.strip() for t in value.split(b",")]
            close = close or b"close" in tokens
            cut += [t for t in tokens if t and t not in (b"close", b"keep-alive")]
    if not cut:
        return raw[:-2], chunked, length, close
    if len(cut) == 1:  # typically "Connection: keep-alive", once
        key = b"\r\n" + cut[0] + b":"
        i = low.find(key)
        end = low.find(b"\r\n", i + 2)
        if low.find(key, end) < 0:
            return raw[:i] + raw[end:-2], chunked, length, close
    spans: list[tuple[int, int]] = []
    for name in dict.fromkeys(cut):
        key = b"\r\n" + name + b":"
        i = low.find(key)
        while i >= 0:
            end = low.find(b"\r\n", i + 2)
            spans.append((i, end))
            i = low.find(key, end)
    spans.sort()
    parts = []
    pos = 0
    for start, end in spans:
        if start >= pos:
            parts.append(raw[pos:start])
            pos = end
    parts.append(raw[pos:-2])
    return b"".join(parts), chunked, length, close
