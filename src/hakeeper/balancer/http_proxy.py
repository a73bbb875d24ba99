"""Mode ``http`` (L7): HTTP/1.1 relay with keep-alive on both sides.

One `HttpClient` per client connection parses requests with httptools and queues them;
requests are sent upstream one at a time, so pipelined requests are answered in order. Each
request borrows an `HttpUpstream` connection from its server's idle pool (or opens one) and
gives it back when the response ends, if both sides allow it.

On the way: hop-by-hop headers are removed both ways (and the ones a ``Connection`` header
names), ``X-Forwarded-For`` and ``Forwarded`` get the client's address, chunked bodies are
decoded and re-chunked (trailers are dropped), a response without a length reaches an
HTTP/1.1 client chunked. A request whose upstream connect failed goes to another server; an
idempotent one whose server vanished before answering is replayed on another server.

Bad input: unparsable request → 400, header block over ``max_header_bytes`` → 431, head not
complete within ``client_header`` → 408, unparsable or missing response → 502, no server →
503, no response within ``response`` → 504. Each closes that one client connection.

Responses are written with one ``write`` per parsed upstream chunk: head and body pieces are
collected during a feed and flushed together.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from typing import cast

import httptools

from hakeeper.balancer.http_wire import (
    ERRORS,
    HOP_BY_HOP,
    IDEMPOTENT,
    LAST_CHUNK,
    REPLAY_LIMIT,
    chunk,
    clean_head,
    forwarded_lines,
)
from hakeeper.balancer.runtime import FrontendRuntime
from hakeeper.balancer.servers import Server

log = logging.getLogger("hakeeper.balancer")

# Request headers that need more than copying; everything else costs one set lookup.
SPECIAL = HOP_BY_HOP | {b"content-length", b"x-forwarded-for", b"forwarded", b"cookie"}

# Client connection phases (what its deadline means).
IDLE, HEAD, CONNECTING, WAITING = 0, 1, 2, 3


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


def _error_request(status: int) -> Request:
    req = Request()
    req.error = status
    req.complete = True
    req.keep_alive = False
    return req


class HttpUpstream(asyncio.Protocol):
    """One keep-alive connection to a server; serves one request at a time."""

    def __init__(self, server: Server, rt: FrontendRuntime) -> None:
        self.server = server
        self.rt = rt
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpResponseParser(self)
        self.client: HttpClient | None = None
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
        client.deadline = self.rt.response_deadline
        self.chunk = data
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._garbage(str(exc))
            return
        if not self.started and self.client is not None:
            self.pending += data
        if self.out and self.client is not None:
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
            self.server.active -= 1
            self.client = None
            client.upstream = None
            client.abort()
        else:
            client.upstream_failed(self, "connection closed before the response ended")

    def pause_writing(self) -> None:
        if self.client is not None:
            self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.client is not None:
            self.client.transport.resume_reading()

    # -- serving one request ---------------------------------------------------------------

    def send(self, client: HttpClient, req: Request) -> None:
        self.client = client
        self.req = req
        self.started = self.finished = self.chunked_out = self.until_eof = False
        self.pending = b""
        self.skip = 0
        self.sent_at = self.rt.loop.time()
        if req.body:
            self.transport.write(req.head + b"".join(req.body))
            if not req.replayable:
                req.body = []
        else:
            self.transport.write(req.head)

    def close(self) -> None:
        self.broken = True
        self.client = None
        if self.transport is not None:
            self.transport.close()

    def _flush(self) -> None:
        out = self.out
        self.out = []
        assert self.client is not None
        self.client.transport.write(out[0] if len(out) == 1 else b"".join(out))

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
        server.observe_response(self.rt.loop.time() - self.sent_at, code)
        if code >= 500 and self.rt.backend.spec.passive.observe_5xx:
            self.rt.backend.observe_error(server, self.rt.now, f"status {code}")
        if sized and req.keep_alive and not req.http10 and self.rt.backend.spec.cookie is None:
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
        cookie = self.rt.backend.spec.cookie
        if cookie is not None and req.sticky != server.name:
            out.append(b"Set-Cookie: %s=%s; Path=/\r\n" % (cookie.encode(), server.name.encode()))
        out.append(b"\r\n")
        return b"".join(out)

    def _whole(self, client: HttpClient, data: bytes) -> bool:
        """Fast path: ``data`` is exactly one complete ``HTTP/1.1`` response with a length.

        The common case on a keep-alive backend; it skips the parser and its callbacks.
        Anything else (interim, HEAD, 204/304, chunked, split reads) returns False and goes
        through httptools.
        """
        req = self.req
        end = data.find(b"\r\n\r\n") + 4
        if end < 4 or req is None or req.method == b"HEAD":
            return False
        code_text = data[9:12]
        if not code_text.isdigit() or data[12:13] not in (b" ", b"\r"):
            return False
        code = int(code_text)
        if code < 200 or code in (204, 304):
            return False
        head, chunked, length, close = clean_head(data[:end])
        if chunked or length < 0 or len(data) != end + length or b" :" in head or b"\t:" in head:
            return False  # the parser decides (it refuses whitespace before a colon)
        client.transport.write(self._start(req, head, code, False, False, True) + data[end:])
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


def _connection_tokens(value: bytes, into: set[bytes] | None) -> set[bytes]:
    tokens = into if into is not None else set()
    for token in value.lower().split(b","):
        token = token.strip()
        if token and token not in (b"close", b"keep-alive"):
            tokens.add(token)
    return tokens


def _drop_named(parts: list[bytes], names: set[bytes], start: int) -> list[bytes]:
    """Remove the headers a Connection header named from a head built as 4-part groups."""
    kept = parts[:start]
    for i in range(start, len(parts) - 3, 4):
        if parts[i].lower() not in names:
            kept += parts[i : i + 4]
    return kept


class HttpClient(asyncio.Protocol):
    """One client connection: parse, queue, dispatch, relay responses in order."""

    def __init__(self, rt: FrontendRuntime) -> None:
        self.rt = rt
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)
        self.queue: deque[Request] = deque()
        self.building: Request | None = None
        self.upstream: HttpUpstream | None = None
        self.connect_task: asyncio.Task[None] | None = None
        self.connecting: Server | None = None
        self.tried: list[Server] = []
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_bytes = 0
        self.in_head = False
        self.phase = IDLE
        self.deadline = 0.0
        self.key = 0
        self.xff = b""
        self.fwd = b""
        self.tail = b"\r\n"  # the end of every request head: forwarded lines, blank line
        self.chain: dict[bytes, bytes] = {}  # a client's own X-Forwarded-For / Forwarded
        self.paused = False
        self.stopped = False  # takes no more requests (bad input, upgrade, closing)
        self.closed = False

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        rt = self.rt
        self.transport = transport
        rt.conns.add(self)
        rt.accepted += 1
        peer = transport.get_extra_info("peername")
        host = peer[0] if peer else "unknown"
        self.key = rt.client_key(host)
        if rt.spec.forwarded:
            self.xff, self.fwd = forwarded_lines(host)
            self.tail = b"X-Forwarded-For: %s\r\nForwarded: %s\r\n\r\n" % (self.xff, self.fwd)
        self.deadline = rt.idle_deadline

    def data_received(self, data: bytes) -> None:
        if self.stopped:
            return
        try:
            self.parser.feed_data(data)
        except HeaderTooLarge:
            self._bad_input(431)
            return
        except httptools.HttpParserUpgrade:
            # Upgrades (websocket, CONNECT) are not relayed: answer what was asked, then close.
            self._stop_reading()
            return
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, HeaderTooLarge):
                self._bad_input(431)
                return
            log.exception("event=request_callback_failed frontend=%s", self.rt.spec.name)
            self._bad_input(400)
            return
        except httptools.HttpParserError:
            self._bad_input(400)
            return
        if self.in_head:
            self.head_bytes += len(data)
            if self.head_bytes > self.rt.limits.max_header_bytes:
                self._bad_input(431)

    def eof_received(self) -> bool:
        # Keep answering what was already asked (a client may half-close after its request).
        if self.queue:
            self._stop_reading()
            return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.rt.conns.discard(self)
        if self.connect_task is not None:
            self.connect_task.cancel()
            self.connect_task = None
        upstream = self.upstream
        if upstream is not None:
            self.upstream = None
            upstream.server.active -= 1
            upstream.close()

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.transport.resume_reading()

    # -- httptools callbacks ---------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        # Also the start of a message: one callback fewer than on_message_begin per request.
        if not self.in_head:
            self.in_head = True
            self.head_bytes = 0
            self.url = url
            self.headers = []
            if not self.queue:
                self.phase = HEAD
                self.deadline = self.rt.header_deadline
        else:
            self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.in_head = False
        if self.stopped:
            return
        parser = self.parser
        req = Request()
        method = parser.get_method()
        req.method = method
        req.idempotent = method in IDEMPOTENT
        req.http10 = parser.get_http_version() == "1.0"
        req.keep_alive = parser.should_keep_alive()
        out = [method, b" ", self.url, b" HTTP/1.1\r\n"]
        tail: bytes | None = self.tail
        size = len(self.url)
        extra_hop: set[bytes] | None = None
        has_body = False
        for name, value in self.headers:
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
                extra_hop = _connection_tokens(value, extra_hop)
            elif lname == b"cookie":
                cookie = self.rt.backend.spec.cookie
                if cookie is not None:
                    req.sticky = _cookie_value(value, cookie)
                out += (name, b": ", value, b"\r\n")
            elif lname in (b"x-forwarded-for", b"forwarded") and self.xff:
                # The client's own chain: ours is appended to it (once, at the end).
                tail = None
                self.chain[lname] = self.chain.get(lname, b"") + value + b", "
            elif lname in (b"x-forwarded-for", b"forwarded"):
                out += (name, b": ", value, b"\r\n")
        if size > self.rt.limits.max_header_bytes:
            raise HeaderTooLarge
        if extra_hop:
            out = _drop_named(out, extra_hop, 4)
        if req.chunked:
            out.append(b"Transfer-Encoding: chunked\r\n")
        if tail is None:
            chain = self.chain
            self.chain = {}
            tail = b"X-Forwarded-For: %s%s\r\nForwarded: %s%s\r\n\r\n" % (
                chain.get(b"x-forwarded-for", b""),
                self.xff,
                chain.get(b"forwarded", b""),
                self.fwd,
            )
        out.append(tail)
        req.head = b"".join(out)
        self.headers = []
        req.complete = not has_body
        self.building = req
        self.queue.append(req)
        if len(self.queue) == 1:
            self._dispatch(req)
        elif len(self.queue) >= self.rt.limits.max_pipeline:
            self._pause()

    def on_body(self, body: bytes) -> None:
        req = self.building
        if req is None:
            return
        piece = chunk(body) if req.chunked else body
        self._add_body(req, piece)

    def on_message_complete(self) -> None:
        req = self.building
        if req is None:
            return
        self.building = None
        if req.chunked:
            self._add_body(req, LAST_CHUNK)
        req.complete = True

    def _add_body(self, req: Request, piece: bytes) -> None:
        upstream = self.upstream
        req.body_bytes += len(piece)
        if req.body_bytes > REPLAY_LIMIT:
            req.replayable = False
        if upstream is not None and upstream.req is req:
            upstream.transport.write(piece)
            if req.replayable:
                req.body.append(piece)
            else:
                req.body = []
            return
        req.body.append(piece)
        if req.body_bytes > REPLAY_LIMIT:
            self._pause()  # nowhere to send it yet: stop reading until it can go out

    # -- dispatch --------------------------------------------------------------------------

    def _dispatch(self, req: Request) -> None:
        if req.error:
            self._write_error(req.error)
            return
        rt = self.rt
        backend = rt.backend
        server: Server | None = None
        if req.sticky is not None:
            server = backend.sticky(req.sticky)
            if server is not None and server in self.tried:
                server = None
        if server is None:
            tried = self.tried
            server = (
                backend.pick(self.key, tried)
                if tried
                else backend.policy.pick(backend.candidates, self.key)
            )
        if server is None:
            log.warning("event=no_server frontend=%s backend=%s", rt.spec.name, backend.name)
            self._write_error(503)
            return
        idle = server.idle
        while idle:
            upstream = idle.pop()
            if not upstream.broken and not upstream.transport.is_closing():
                upstream.reused = True
                self._attach(upstream, req)
                return
        self.phase = CONNECTING
        self.deadline = rt.connect_deadline
        self.connecting = server
        self.connect_task = rt.loop.create_task(self._open(server, req))

    async def _open(self, server: Server, req: Request) -> None:
        rt = self.rt
        try:
            _, upstream = await rt.loop.create_connection(
                lambda: HttpUpstream(server, rt), server.host, server.port
            )
        except OSError as exc:
            self.connect_task = None
            self._connect_failed(server, exc.strerror or type(exc).__name__)
            return
        self.connect_task = None
        self.connecting = None
        if self.closed:
            upstream.close()
            return
        rt.backend.observe_success(server)
        self._attach(upstream, req)

    def _connect_failed(self, server: Server, why: str) -> None:
        rt = self.rt
        self.connecting = None
        rt.backend.observe_connect_error(server, rt.now)
        self.tried.append(server)
        if self.closed:
            return
        if len(self.tried) > rt.backend.spec.retries:
            log.warning(
                "event=connect_failed frontend=%s server=%s reason=%s retries=exhausted",
                rt.spec.name,
                server.name,
                why.replace(" ", "_"),
            )
            self._write_error(503)
            return
        self._dispatch(self.queue[0])

    def _attach(self, upstream: HttpUpstream, req: Request) -> None:
        server = upstream.server
        server.active += 1
        server.requests += 1
        self.upstream = upstream
        self.phase = WAITING
        self.deadline = self.rt.response_deadline
        upstream.send(self, req)

    # -- called by the upstream ------------------------------------------------------------

    def response_done(self, upstream: HttpUpstream, reusable: bool) -> None:
        server = upstream.server
        server.active -= 1
        self.upstream = None
        upstream.client = None
        upstream.req = None
        if self.tried:
            self.tried = []
        req = self.queue.popleft()
        if reusable and req.complete and server.up and not self.closed:
            if len(server.idle) < self.rt.limits.pool_idle_per_server:
                server.idle.append(upstream)
            else:
                upstream.close()
        else:
            upstream.close()
        if self.closed:
            return
        if not req.keep_alive:
            self._stop_reading()
            self.transport.close()
            return
        if self.paused and not self.stopped and len(self.queue) < self.rt.limits.max_pipeline:
            self.paused = False
            self.transport.resume_reading()
        if self.queue:
            self._dispatch(self.queue[0])
        else:
            self.phase = HEAD if self.in_head else IDLE
            rt = self.rt
            self.deadline = rt.header_deadline if self.in_head else rt.idle_deadline

    def upstream_failed(self, upstream: HttpUpstream, why: str) -> None:
        """The upstream connection ended before any response head arrived."""
        server = upstream.server
        server.active -= 1
        self.upstream = None
        upstream.client = None
        if self.closed or not self.queue:
            return
        req = self.queue[0]
        if not upstream.reused:
            self.rt.backend.observe_error(server, self.rt.now, why)
        if req.idempotent and req.replayable and len(self.tried) < self.rt.backend.spec.retries:
            # Nothing was answered: safe to replay where it may succeed.
            self.tried.append(server)
            self._dispatch(req)
            return
        self._write_error(502)

    def fail_request(self, upstream: HttpUpstream, status: int) -> None:
        upstream.server.active -= 1
        self.upstream = None
        upstream.client = None
        self._write_error(status)

    def abort(self) -> None:
        """A response broke off half-way: nothing sensible can follow on this connection."""
        self.transport.abort()

    # -- endings ---------------------------------------------------------------------------

    def _write_error(self, status: int) -> None:
        self._stop_reading()
        if not self.closed:
            self.transport.write(ERRORS[status])
            self.transport.close()

    def _bad_input(self, status: int) -> None:
        """Answer ``status`` after the responses already owed, then close."""
        stopped = self.stopped
        self._stop_reading()
        self.in_head = False
        if stopped:
            return
        if self.queue:
            self.queue.append(_error_request(status))
        else:
            self._write_error(status)

    def _stop_reading(self) -> None:
        self.stopped = True
        self.building = None
        if not self.paused and not self.closed:
            self.paused = True
            self.transport.pause_reading()

    def _pause(self) -> None:
        if not self.paused:
            self.paused = True
            self.transport.pause_reading()

    # -- deadline sweep --------------------------------------------------------------------

    def expire(self) -> None:
        phase = self.phase
        if phase == HEAD:
            self._write_error(408)
        elif phase == CONNECTING and self.connect_task is not None:
            server = self.connecting
            self.connect_task.cancel()
            self.connect_task = None
            if server is not None:
                self._connect_failed(server, "connect timeout")
        elif phase == WAITING and self.upstream is not None:
            upstream = self.upstream
            if upstream.started:
                upstream.close()
                self.abort()
            else:
                self.rt.backend.observe_error(upstream.server, self.rt.now, "response timeout")
                self.fail_request(upstream, 504)
                upstream.close()
        else:
            self.transport.close()
        if self.transport.is_closing():
            self.deadline = math.inf  # expired once; connection_lost takes it off the sweep


def _cookie_value(header: bytes, name: str) -> str | None:
    wanted = name.encode() + b"="
    for part in header.split(b";"):
        part = part.strip()
        if part.startswith(wanted):
            return part[len(wanted) :].decode("latin-1")
    return None
