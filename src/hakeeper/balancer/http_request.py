"""What the L7 relay keeps of one request, and the header helpers both directions share."""

from __future__ import annotations

import re

from hakeeper.balancer.http_wire import HOP_BY_HOP

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
