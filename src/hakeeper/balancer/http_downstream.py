"""Mode ``http`` (L7): HTTP/1.1 relay with keep-alive on both sides.

The client-facing side (downstream, as `http_upstream` is the server-facing side): one
`HttpDownstream` per accepted client connection parses requests with httptools and queues
them; requests are sent upstream one at a time, so pipelined requests are answered in
order. Each request borrows an `HttpUpstream` connection from its server's idle pool (or
opens one) and gives it back when the response ends, if both sides allow it.

On the way: the request head is rebuilt (`http_request`: hop-by-hop headers out, forwarded
headers in), chunked bodies are decoded and re-chunked (trailers are dropped), a response
without a length reaches an HTTP/1.1 client chunked. A request whose upstream connect
failed goes to another server; an idempotent one whose server vanished before answering
is replayed on another server.

Bad input: unparsable request → 400, header block over ``max_header_bytes`` → 431, head not
complete within ``client_header`` of its first byte → 408, unparsable or missing response,
or a response head over ``max_header_bytes`` → 502, no server → 503, response head not
complete within ``response`` of the request being sent → 504. Each closes that one client
connection. Above the frontend's ``maxconn`` a connection waits unread for a slot (see
`runtime`), and gets a 503 when the queue is full or its wait passes ``timeouts.queue``.

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

from hakeeper.balancer.http_request import (
    NOT_FORWARDED,
    Forwarding,
    HeaderTooLarge,
    Request,
    error_request,
    forward_head,
    plain_request,
)
from hakeeper.balancer.http_upstream import HttpUpstream
from hakeeper.balancer.http_wire import ERRORS, IDEMPOTENT, LAST_CHUNK, REPLAY_LIMIT, chunk
from hakeeper.balancer.runtime import FrontendRuntime
from hakeeper.balancer.servers import Server

log = logging.getLogger("hakeeper.balancer")

# Client connection phases (what its deadline means).
IDLE, HEAD, CONNECTING, WAITING, QUEUED = 0, 1, 2, 3, 4


class HttpDownstream(asyncio.Protocol):
    """One accepted client connection: parse, queue, dispatch, relay responses in order."""

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
        self.mid = False  # the parser holds part of a message (no fast path until it ends)
        self.phase = IDLE
        self.deadline = 0.0
        self.key = 0
        self.forwarding = NOT_FORWARDED
        self.paused = False
        self.stopped = False  # takes no more requests (bad input, upgrade, closing)
        self.half_closed = False  # the client sent EOF after requests still being answered
        self.closed = False
        self.slot = False  # holds one of the frontend's maxconn slots
        self.early: list[bytes] = []  # what arrived while waiting for a slot

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        rt = self.rt
        self.transport = transport
        rt.conns.add(self)
        rt.accepted += 1
        if rt.served >= rt.maxconn:
            self._wait_for_slot()
            return
        rt.served += 1
        self.slot = True
        self._start()

    def _start(self) -> None:
        rt = self.rt
        peer = self.transport.get_extra_info("peername")
        host = peer[0] if peer else "unknown"
        self.key = rt.client_key(host)
        if rt.spec.forwarded:
            self.forwarding = Forwarding.of(host)
        # A new connection owes its first request head within client_header (HAProxy's
        # `timeout http-request`), so connections that say nothing cannot fill maxconn for
        # the longer keep-alive idle time.
        self.deadline = rt.header_deadline

    def data_received(self, data: bytes) -> None:
        if self.stopped:
            if self.phase == QUEUED:
                self.early.append(data)  # one read at most: reading was paused at once
            return
        if not self.mid:
            # A plain request needs no parser (see `plain_request`).
            rt = self.rt
            cookie, limit = rt.cookie, rt.limits.max_header_bytes
            req = plain_request(data, self.forwarding.tail, cookie, limit)
            if req is not None:
                self._enqueue(req)
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
            self.half_closed = True  # closed once the last answer is out
            return True
        self.rt.batch.flush()  # returning False closes the transport: send what is owed first
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.rt.leave(self, self.slot, self.phase == QUEUED)
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

    # -- maxconn ---------------------------------------------------------------------------

    def _wait_for_slot(self) -> None:
        """No slot free: wait unread in the frontend's queue, or be refused when it is full."""
        self.phase = QUEUED
        self.stopped = self.paused = True
        self.transport.pause_reading()
        if not self.rt.hold(self):
            self.phase = IDLE  # refused: not in the queue
            self.transport.write(ERRORS[503])
            self.transport.close()

    def admit(self) -> None:
        self.slot = True
        self.phase = IDLE
        self._start()
        self.stopped = self.paused = False
        self.transport.resume_reading()
        if self.early:
            data = b"".join(self.early)
            self.early = []
            self.data_received(data)

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        # The head's deadline runs from its first byte, so a head sent a byte at a time
        # (slowloris) is cut at client_header whatever it has sent by then.
        self.mid = self.in_head = True
        self.head_bytes = 0
        self.url = b""
        self.headers = []
        if not self.queue:
            self.phase = HEAD
            self.deadline = self.rt.header_deadline

    def on_url(self, url: bytes) -> None:
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
        rt = self.rt
        limit, cookie = rt.limits.max_header_bytes, rt.cookie
        forward_head(req, self.url, self.headers, self.forwarding, cookie, limit)
        self.headers = []
        self.building = req
        self._enqueue(req)

    def _enqueue(self, req: Request) -> None:
        """Queue ``req``: sent at once when it is first, else after the ones before it."""
        queue = self.queue
        queue.append(req)
        if len(queue) == 1:
            self._dispatch(req)
        elif len(queue) >= self.rt.limits.max_pipeline:
            self._pause()

    def on_body(self, body: bytes) -> None:
        req = self.building
        if req is None:
            return
        piece = chunk(body) if req.chunked else body
        self._add_body(req, piece)

    def on_message_complete(self) -> None:
        self.mid = False
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
            self.rt.batch.write(upstream.transport, piece)  # after the head, still in the batch
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
        if rt.retries_spent(server, self.tried, why):
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
        if not req.keep_alive or (self.half_closed and not self.queue):
            self._stop_reading()
            self.rt.batch.flush()
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

    def response_broken(self, upstream: HttpUpstream) -> None:
        upstream.server.active -= 1
        self.upstream = None
        self.abort()

    def abort(self) -> None:
        """A response broke off half-way: nothing sensible can follow on this connection."""
        self.transport.abort()

    # -- endings ---------------------------------------------------------------------------

    def _write_error(self, status: int) -> None:
        self._stop_reading()
        if not self.closed:
            self.rt.batch.flush()  # the responses owed before this one
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
            self.queue.append(error_request(status))
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
        elif phase == QUEUED:
            self.rt.drop_waiting(self)
            self.phase = IDLE  # out of the queue
            self._write_error(503)
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
            self.rt.batch.flush()
            self.transport.close()
        if self.transport.is_closing():
            self.deadline = math.inf  # expired once; connection_lost takes it off the sweep
