"""HTTP/1.1 wire details the L7 relay needs: hop-by-hop names, canned error responses."""

from __future__ import annotations

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


# httptools refuses whitespace before the colon, so "\r\nname:" finds every such header.
_HOP_KEYS = tuple(b"\r\n" + name + b":" for name in sorted(HOP_BY_HOP))


def clean_head(raw: bytes) -> tuple[bytes, bool, int, bool]:
    """A raw head (status or request line, headers, blank line) without hop-by-hop headers.

    Returns the head up to and including the last header's CRLF (the caller appends its own
    lines and the blank line), whether the body was chunked, the Content-Length (-1 when
    absent, -2 when repeated or unreadable) and whether ``Connection: close`` was said.
    Headers named by a ``Connection`` header go too. Plain ``bytes.find`` on a lowered copy:
    this runs once per response on the hot path, where ``re`` costs several times more.
    """
    low = raw.lower()
    length = -1
    i = low.find(b"\r\ncontent-length:")
    if i >= 0:
        end = low.find(b"\r\n", i + 2)
        value = low[i + 17 : end].strip()
        length = int(value) if value.isdigit() else -2
        if low.find(b"\r\ncontent-length:", end) >= 0:
            length = -2
    cuts: list[tuple[int, int]] = []
    chunked = close = False
    named: list[bytes] = []
    for key in _HOP_KEYS:
        i = low.find(key)
        while i >= 0:
            end = low.find(b"\r\n", i + 2)
            if key == b"\r\ntransfer-encoding:":
                chunked = b"chunked" in low[i:end]
            elif key == b"\r\nconnection:":
                value = low[i + 13 : end].strip()
                if value == b"close":
                    close = True
                elif value != b"keep-alive":
                    tokens = [t.strip() for t in value.split(b",")]
                    close = close or b"close" in tokens
                    named += tokens
            cuts.append((i, end))
            i = low.find(key, end)
    for token in named:
        if token and token not in (b"close", b"keep-alive"):
            key = b"\r\n" + token + b":"
            i = low.find(key)
            while i >= 0:
                end = low.find(b"\r\n", i + 2)
                cuts.append((i, end))
                i = low.find(key, end)
    if not cuts:
        return raw[:-2], chunked, length, close
    if len(cuts) == 1:
        start, end = cuts[0]
        return raw[:start] + raw[end:-2], chunked, length, close
    cuts.sort()
    parts = []
    pos = 0
    for start, end in cuts:
        if start >= pos:
            parts.append(raw[pos:start])
            pos = end
    parts.append(raw[pos:-2])
    return b"".join(parts), chunked, length, close
