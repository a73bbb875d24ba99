"""What the L7 relay keeps of one request, and the request head it sends upstream.

A plain request (`SIMPLE_REQUEST`) is forwarded from one regex match (`plain_request`);
anything else goes through httptools and its head is rebuilt from the parsed fields
(`forward_head`). Either way the head goes out as HTTP/1.1 without hop-by-hop headers (nor
the ones a ``Connection`` header names), with the client's address appended to
``X-Forwarded-For`` and ``Forwarded`` when the frontend says so (`Forwarding`).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from hakeeper.balancer.http_wire import HOP_BY_HOP, forwarded_lines

# Request headers that need more than copying; everything else costs one set lookup.
SPECIAL = HOP_BY_HOP | {b"content-length", b"x-forwarded-for", b"forwarded", b"cookie"}

# The common request, whole in one read, that needs no parser: a bodyless idempotent method,
# a visible-ASCII target, HTTP/1.0 or 1.1, token-named fields with visible-ASCII values and
# no whitespace before a colon, nothing after the blank line. Groups: method, target, minor
# version, the field lines. Anything else (bodies, pipelining, obs-fold, obs-text, split
# reads) goes through httptools.
SIMPLE_REQUEST = re.compile(
    rb"(GET|HEAD|DELETE|OPTIONS) ([!-~]+) HTTP/1\.([01])\r\n"
    rb"((?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t -~]*\r\n)*)\r\n"
)


def _special_field(names: frozenset[bytes]) -> re.Pattern[bytes]:
    alternatives = b"|".join(re.escape(n) for n in sorted(names))
    return re.compile(rb"^(?:" + alternatives + rb"):", re.M)


# Finds, in lowered field lines, a field that makes a request not simple (the cookie only
# matters to a backend with cookie stickiness).
SPECIAL_FIELD = _special_field(SPECIAL)
SPECIAL_FIELD_NO_COOKIE = _special_field(SPECIAL - {b"cookie"})


class HeaderTooLarge(Exception):
    """Raised inside a parser callback to stop parsing an oversized header block."""


class Request:
    """One parsed request on its way; class attributes are the defaults (fewer stores)."""

    method = b""
    head = b""
    body_bytes = 0
    chunked = False
    complete = False
    error = 0
    http10 = False
    idempotent = False
    keep_alive = True
    replayable = True
    sticky: str | None = None

    def __init__(self) -> None:
        self.body: list[bytes] = []


def error_request(status: int) -> Request:
    req = Request()
    req.error = status
    req.complete = True
    req.keep_alive = False
    return req


def connection_tokens(value: bytes, into: set[bytes] | None) -> set[bytes]:
    tokens = into if into is not None else set()
    for token in value.lower().split(b","):
        token = token.strip()
        if token and token not in (b"close", b"keep-alive"):
            tokens.add(token)
    return tokens


def drop_named(parts: list[bytes], names: set[bytes], start: int) -> list[bytes]:
    """Remove the headers a Connection header named from a head built as 4-part groups."""
    kept = parts[:start]
    for i in range(start, len(parts) - 3, 4):
        if parts[i].lower() not in names:
            kept += parts[i : i + 4]
    return kept


def cookie_value(header: bytes, name: str) -> str | None:
    wanted = name.encode() + b"="
    for part in header.split(b";"):
        part = part.strip()
        if part.startswith(wanted):
            return part[len(wanted) :].decode("latin-1")
    return None


class Forwarding(NamedTuple):
    """What one client connection adds to every request head it sends upstream.

    A NamedTuple rather than a frozen dataclass: one is built per accepted connection, and
    a frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``.
    """

    xff: bytes = b""  # its X-Forwarded-For element; empty: the frontend adds nothing
    fwd: bytes = b""  # its Forwarded element
    tail: bytes = b"\r\n"  # the end of every head: the forwarded lines, the blank line

    @classmethod
    def of(cls, peer_host: str) -> Forwarding:
        xff, fwd = forwarded_lines(peer_host)
        return cls(xff, fwd, b"X-Forwarded-For: %s\r\nForwarded: %s\r\n\r\n" % (xff, fwd))


NOT_FORWARDED = Forwarding()


def plain_request(
    data: bytes, tail: bytes, cookie: str | None, max_header_bytes: int
) -> Request | None:
    """The request in ``data`` if it is a plain one (see `SIMPLE_REQUEST`), else None.

    The parser path costs a callback per field and a Python loop over the fields; here one
    regex match checks the whole head and the field lines are forwarded as they came, ended
    by ``tail``. ``cookie``: the backend's stickiness cookie (a Cookie field then needs the
    parser path).
    """
    match = SIMPLE_REQUEST.fullmatch(data)
    if match is None:
        return None
    method, target, minor, fields = match.groups()
    special = SPECIAL_FIELD_NO_COOKIE if cookie is None else SPECIAL_FIELD
    if special.search(fields.lower()) or len(data) > max_header_bytes:
        return None
    req = Request()
    req.method = method
    req.idempotent = req.complete = True
    if minor == b"0":
        req.http10 = True
        req.keep_alive = False  # HTTP/1.0 without "Connection: keep-alive"
    req.head = b"%s %s HTTP/1.1\r\n%s%s" % (method, target, fields, tail)
    return req


def forward_head(
    req: Request,
    url: bytes,
    headers: list[tuple[bytes, bytes]],
    forwarding: Forwarding,
    cookie: str | None,
    max_header_bytes: int,
) -> None:
    """Set ``req.head`` from a parsed request's fields, and what they say of it.

    Also sets ``chunked``, ``sticky`` (the value of ``cookie``, the backend's stickiness
    cookie) and ``complete`` (no body follows). Raises `HeaderTooLarge` when the fields add
    up to more than ``max_header_bytes``.
    """
    out = [req.method, b" ", url, b" HTTP/1.1\r\n"]
    tail: bytes | None = forwarding.tail
    size = len(url)
    extra_hop: set[bytes] | None = None
    chain: dict[bytes, bytes] = {}  # the client's own X-Forwarded-For / Forwarded
    has_body = False
    for name, value in headers:
        size += len(name) + len(value)
        lname = name.lower()
        if lname not in SPECIAL:  # one set lookup for an ordinary header
            out += (name, b": ", value, b"\r\n")
        elif lname == b"content-length":
            has_body = value.strip() not in (b"0", b"")
            out += (name, b": ", value, b"\r\n")
        elif lname == b"transfer-encoding":
            req.chunked = has_body = True
        elif lname == b"connection":
            extra_hop = connection_tokens(value, extra_hop)
        elif lname == b"cookie":
            if cookie is not None:
                req.sticky = cookie_value(value, cookie)
            out += (name, b": ", value, b"\r\n")
        elif lname in (b"x-forwarded-for", b"forwarded") and forwarding.xff:
            # The client's own chain: ours is appended to it (once, at the end).
            tail = None
            chain[lname] = chain.get(lname, b"") + value + b", "
        elif lname in (b"x-forwarded-for", b"forwarded"):
            out += (name, b": ", value, b"\r\n")
    if size > max_header_bytes:
        raise HeaderTooLarge
    if extra_hop:
        out = drop_named(out, extra_hop, 4)
    if req.chunked:
        out.append(b"Transfer-Encoding: chunked\r\n")
    if tail is None:
        tail = b"X-Forwarded-For: %s%s\r\nForwarded: %s%s\r\n\r\n" % (
            chain.get(b"x-forwarded-for", b""),
            forwarding.xff,
            chain.get(b"forwarded", b""),
            forwarding.fwd,
        )
    out.append(tail)
    req.head = b"".join(out)
    req.complete = not has_body
