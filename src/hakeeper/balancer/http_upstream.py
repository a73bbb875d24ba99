"""One keep-alive connection to a server, serving one request at a time (mode ``http``).

The response head is cut from the raw bytes and cleaned of hop-by-hop headers
(`http_wire.clean_head`); a response that arrives whole in one read with a Content-Length
skips the parser, anything else goes through httptools. Output for the client is collected
during a feed and written once.

A response head is bounded: over ``limits.max_header_bytes`` (interim responses included)
it is refused with a 502, and it must be complete within ``timeouts.response`` of the
request being sent (a 504): the deadline moves with each chunk of a body, never with a
piece of a head, so a server trickling an endless head cannot hold the client. Either way
that upstream connection is closed.

The client connection a response goes to is seen only through `Downstream`, the few calls
an upstream connection makes on it; the client side imports this module, never the reverse.
"""

from __future__ import annotations

import asyncio
import logging
from time import perf_counter
from typing import Protocol, cast

import httptools

from hakeeper.balancer.http_request import Request
from hakeeper.balancer.http_wire import LAST_CHUNK, chunk, clean_head
from hakeeper.balancer.runtime import FrontendRuntime
from hakeeper.balancer.servers import Server

log = logging.getLogger("hakeeper.balancer")


class Downstream(Protocol):
    """The client connection an upstream connection is answering, as the upstream sees it.

    Typing only: the calls go straight to the client connection's methods, so the hot path
    pays nothing for the interface.
    """

    transport: asyncio.Transport  # where the response is written
    deadline: float  # moved while a response body flows

    def response_done(self, upstream: HttpUpstream, reusable: bool) -> None:
        """The response ended; ``reusable``: the connection may serve another request."""

    def upstream_failed(self, upstream: HttpUpstream, why: str) -> None:
        """The connection ended before a response head arrived (the request may be replayed)."""

    def fail_request(self, upstream: HttpUpstream, status: int) -> None:
        """The response cannot be relayed: answer ``status`` instead, then close."""

    def response_broken(self, upstream: HttpUpstream) -> None:
        """The connection ended part-way through a response the client has begun to get."""

    def abort(self) -> None:
        """A response broke off half-way: close the client connection at once."""


class HttpUpstream(asyncio.Protocol):
    """One keep-alive connection to a server; serves one request at a time."""

    def __init__(self, server: Server, rt: FrontendRuntime) -> None:
        self.server = server
        self.rt = rt
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpResponseParser(self)
        self.client: Downstream | None = None
        self.req: Request | None = None
        self.out: list[bytes] = []
        self.chunk = b""  # the data being fed (response heads are cut from it)
        self.pending = b""  # a response head's first part, while it is incomplete
        self.skip = 0  # where the head starts in pending + chunk (after interim responses)
        self.status = 0
        self.started = False  # response head seen
        self.finished = False
        self.chunked_out = False
        self.until_eof = False
        self.broken = False
        self.reused = False
        self.sent_at = 0.0

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client is None:
            # Nothing asked: a server talking out of turn on an idle connection.
            self.close()
            return
        if (
            not self.started
            and not self.pending
            and data.startswith(b"HTTP/1.1 ")
            and self._whole(client, data)
        ):
            return
        self.chunk = data
        req = self.req
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._garbage(str(exc))
            return
        if self.client is None or self.req is not req:
            return  # the response ended in this chunk (and this connection may serve the next)
        if self.started:
            # The body is flowing: `response` is now the longest silence between chunks.
            client.deadline = self.rt.response_deadline
        else:
            self.pending += data
            if len(self.pending) > self.rt.limits.max_header_bytes:
                self._garbage("response head over max_header_bytes")
                return
        if self.out:
            self._flush()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.broken = True
        client = self.client
        if client is None:
            idle = self.server.idle
            if self in idle:
                idle.remove(self)
            return
        if self.finished:
            return
        if self.started and self.until_eof:
            self._complete()
        elif self.started:
            # Part of the response is already with the client: it cannot be replayed.
            self.client = None
            client.response_broken(self)
        else:
            client.upstream_failed(self, "connection closed before the response ended")

    def pause_writing(self) -> None:
        if self.client is not None:
            self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.client is not None:
            self.client.transport.resume_reading()

    # -- serving one request ---------------------------------------------------------------

    def send(self, client: Downstream, req: Request) -> None:
        self.client = client
        self.req = req
        self.started = self.finished = self.chunked_out = self.until_eof = False
        self.pending = b""
        self.skip = 0
        self.sent_at = perf_counter()
        if req.body:
            self.rt.batch.write(self.transport, req.head + b"".join(req.body))
            if not req.replayable:
                req.body = []
        else:
            self.rt.batch.write(self.transport, req.head)

    def close(self) -> None:
        self.broken = True
        self.client = None
        if self.transport is not None:
            self.rt.batch.flush()
            self.transport.close()

    def _flush(self) -> None:
        out = self.out
        self.out = []
        assert self.client is not None
        self.rt.batch.write(self.client.transport, out[0] if len(out) == 1 else b"".join(out))

    def _garbage(self, why: str) -> None:
        client = self.client
        log.warning(
            "event=bad_response backend=%s server=%s reason=%s",
            self.server.backend,
            self.server.name,
            why.replace(" ", "_")[:120],
        )
        self.broken = True
        if client is not None:
            if self.started:
                self.out = []
                client.abort()
            else:
                client.fail_request(self, 502)
        self.close()

    # -- httptools callbacks ---------------------------------------------------------------

    def on_headers_complete(self) -> None:
        req = self.req
        if req is None or self.client is None:
            raise ValueError("response without a request")
        buf = self.pending + self.chunk if self.pending else self.chunk
        skip = buf.find(b"HTTP/", self.skip)  # the parser allows CRLFs before a status line
        end = buf.find(b"\r\n\r\n", skip) + 4
        if skip < 0 or end < 4:
            raise ValueError("response head not delimited by CRLF")
        if end > self.rt.limits.max_header_bytes:
            raise ValueError("response head over max_header_bytes")
        head, chunked, length, _ = clean_head(buf[skip:end])
        if head.startswith(b"HTTP/1.0"):
            head = b"HTTP/1.1" + head[8:]
        code = self.parser.get_status_code()
        if code < 200:
            # Interim (100 Continue, 103): pass it on, the real response follows.
            self.skip = end
            self.out.append(head + b"\r\n")
            return
        self.skip = 0
        self.pending = b""
        bodyless = req.method == b"HEAD" or code in (204, 304)
        self.out.append(self._start(req, head, code, bodyless, chunked, length != -1))
        if bodyless:
            # httptools cannot be told a HEAD response has no body: end it here and parse
            # the next response with a fresh parser.
            self.parser = httptools.HttpResponseParser(self)
            self._complete()

    def _start(
        self, req: Request, head: bytes, code: int, bodyless: bool, chunked: bool, sized: bool
    ) -> bytes:
        """The response head for the client: framing, connection and stickiness lines."""
        self.status = code
        self.started = True
        server = self.server
        server.observe_response(perf_counter() - self.sent_at, code)
        if code >= 500 and self.rt.backend.spec.passive.observe_5xx:
            self.rt.backend.observe_error(server, self.rt.now, f"status {code}")
        if sized and req.keep_alive and not req.http10 and self.rt.cookie is None:
            return head + b"\r\n"  # the common case: nothing to add
        out = [head]
        if not bodyless and not sized:
            if chunked or not req.http10:
                self.chunked_out = True
                out.append(b"Transfer-Encoding: chunked\r\n")
            self.until_eof = not chunked
        if not req.keep_alive or (self.until_eof and not self.chunked_out):
            req.keep_alive = False
            out.append(b"Connection: close\r\n")
        elif req.http10:
            out.append(b"Connection: keep-alive\r\n")
        cookie = self.rt.cookie
        if cookie is not None and req.sticky != server.name:
            out.append(b"Set-Cookie: %s=%s; Path=/\r\n" % (cookie.encode(), server.name.encode()))
        out.append(b"\r\n")
        return b"".join(out)

    def _whole(self, client: Downstream, data: bytes) -> bool:
        """Fast path: ``data`` is exactly one complete ``HTTP/1.1`` response with a length.

        The common case on a keep-alive backend; it skips the parser and its callbacks.
        Anything else (interim, HEAD, 204/304, chunked, split reads) returns False and goes
        through httptools.
        """
        req = self.req
        end = data.find(b"\r\n\r\n") + 4
        if end < 4 or req is None or req.method == b"HEAD":
            return False
        if end > self.rt.limits.max_header_bytes:
            return False  # the parser path refuses it
        code_text = data[9:12]
        if not code_text.isdigit() or data[12:13] not in (b" ", b"\r"):
            return False
        code = int(code_text)
        if code < 200 or code in (204, 304):
            return False
        head, chunked, length, close = clean_head(data[:end])
        # find, not `in`: bytes.__contains__ first tries the needle as an int and formats a
        # TypeError message on every call.
        if (
            chunked
            or length < 0
            or len(data) != end + length
            or head.find(b" :") >= 0
            or head.find(b"\t:") >= 0
        ):
            return False  # the parser decides (it refuses whitespace before a colon)
        out = self._start(req, head, code, False, False, True) + data[end:]
        self.rt.batch.write(client.transport, out)
        self.finished = True
        reusable = not close and not self.broken and not self.transport.is_closing()
        client.response_done(self, reusable)
        return True

    def on_body(self, body: bytes) -> None:
        if self.chunked_out:
            self.out.append(chunk(body))
        else:
            self.out.append(body)

    def on_message_complete(self) -> None:
        if not self.started or self.finished:
            return
        self._complete()

    def _complete(self) -> None:
        self.finished = True
        if self.chunked_out:
            self.out.append(LAST_CHUNK)
        client = self.client
        if client is None:
            return
        if self.out:
            self._flush()
        reusable = (
            not self.until_eof
            and not self.broken
            and self.parser.should_keep_alive()
            and not self.transport.is_closing()
        )
        client.response_done(self, reusable)
