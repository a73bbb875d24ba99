"""Mode ``tcp`` (L4): bytes both ways between a client and one server.

- the client's reading stays paused until the upstream connection is up, so nothing is
  buffered for a connection that may still fail;
- a failed or timed-out connect is redispatched to another server (``retries`` times),
  nothing having been sent yet;
- half-close: an EOF from one side becomes ``write_eof`` toward the other, and the
  connection ends when both directions are done;
- backpressure: when one side's write buffer is over its high-water mark, reading from the
  other side pauses until it drains;
- no Python runs per chunk: once both sides are up, each side's ``data_received`` *is* the
  other side's ``transport.write``, which the event loop calls directly;
- above the frontend's ``maxconn`` a connection waits, unread and with no upstream, for a
  slot (see `runtime`); it is closed when the queue is full or its wait passes
  ``timeouts.queue``;
- so the idle timeout cannot count chunks: when the frontend's deadline sweep finds the
  deadline passed, it asks the kernel (``TCP_INFO``) how long both sockets have been
  without data either way, and moves the deadline on by what is left.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import struct
from collections.abc import Callable
from typing import cast

from hakeeper.balancer.runtime import FrontendRuntime
from hakeeper.balancer.servers import Server

log = logging.getLogger("hakeeper.balancer")

# struct tcp_info: tcpi_last_data_sent at byte 44, tcpi_last_data_recv at 52 (milliseconds).
_LAST_DATA = struct.Struct("=I4xI")


def quiet_seconds(transport: asyncio.BaseTransport | None) -> float:
    """How long the kernel has seen no data on a TCP socket either way (inf if unknown)."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return math.inf
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 64)
    except OSError:
        return math.inf
    if len(info) < 56:
        return math.inf
    sent, received = _LAST_DATA.unpack_from(info, 44)
    return float(min(sent, received)) / 1000


class TcpUpstream(asyncio.Protocol):
    """The connection to the server, relaying to one client connection."""

    __slots__ = ("client", "data_received", "transport")
    # An instance slot set to the other side's write, where asyncio.Protocol has a method.
    data_received: Callable[[bytes], None]  # type: ignore[assignment]

    def __init__(self, client: TcpDownstream) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        # The event loop calls the client's write itself: no Python frame per chunk.
        self.data_received = client.transport.write

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport

    def eof_received(self) -> bool:
        return self.client.upstream_eof()

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.upstream_lost()

    def pause_writing(self) -> None:
        self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        self.client.transport.resume_reading()


class TcpDownstream(asyncio.Protocol):
    """One accepted client connection (the downstream side) and its relay to a server."""

    __slots__ = (
        "client_eof",
        "connect_task",
        "data_received",
        "deadline",
        "early",
        "key",
        "queued",
        "rt",
        "server",
        "slot",
        "transport",
        "tried",
        "upstream",
        "upstream_done",
    )
    # An instance slot set to the other side's write, where asyncio.Protocol has a method.
    data_received: Callable[[bytes], None]  # type: ignore[assignment]

    def __init__(self, rt: FrontendRuntime) -> None:
        self.rt = rt
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.upstream: TcpUpstream | None = None
        self.server: Server | None = None
        self.connect_task: asyncio.Task[None] | None = None
        self.tried: list[Server] = []
        self.client_eof = False
        self.early: list[bytes] = []
        self.upstream_done = False
        # Until the upstream connection is up (uvloop may deliver a first read even though
        # reading was paused at once); then the upstream's write itself.
        self.data_received = self.early.append
        self.deadline = 0.0
        self.key = 0
        self.slot = False  # holds one of the frontend's maxconn slots
        self.queued = False  # waits in the frontend's queue for one

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        rt = self.rt
        self.transport = transport
        transport.pause_reading()
        rt.conns.add(self)
        rt.accepted += 1
        if rt.keyed:
            peer = transport.get_extra_info("peername")
            self.key = rt.client_key(peer[0] if peer else "")
        if rt.served >= rt.maxconn:
            if rt.hold(self):
                self.queued = True
            else:
                transport.close()  # the queue is full too: refused
            return
        rt.served += 1
        self.slot = True
        self._connect()

    def admit(self) -> None:
        self.queued = False
        self.slot = True
        self._connect()

    def _connect(self) -> None:
        rt = self.rt
        server = rt.backend.pick(self.key, self.tried)
        if server is None:
            log.warning("event=no_server frontend=%s backend=%s", rt.spec.name, rt.backend.name)
            self.transport.close()
            return
        self.server = server
        self.deadline = rt.now + rt.timeouts.connect
        self.connect_task = rt.loop.create_task(self._open(server))

    async def _open(self, server: Server) -> None:
        try:
            _, upstream = await self.rt.loop.create_connection(
                lambda: TcpUpstream(self), server.host, server.port
            )
        except OSError as exc:
            self.connect_task = None
            self._connect_failed(server, exc.strerror or type(exc).__name__)
            return
        self.connect_task = None
        if self.transport.is_closing():
            assert upstream.transport is not None
            upstream.transport.close()
            return
        self.upstream = upstream
        server.active += 1
        server.requests += 1
        self.rt.backend.observe_success(server)
        self.deadline = self.rt.tcp_idle_deadline
        transport = upstream.transport
        assert transport is not None
        if self.early:
            transport.write(b"".join(self.early))
            self.early = []
        self.data_received = transport.write
        # uvloop keeps the protocol's data_received from set_protocol on: make it re-read it.
        self.transport.set_protocol(self)
        if self.client_eof:
            transport.write_eof()
        else:
            self.transport.resume_reading()

    def _connect_failed(self, server: Server, why: str) -> None:
        rt = self.rt
        rt.backend.observe_connect_error(server, rt.now)
        self.tried.append(server)
        self.server = None
        if self.transport.is_closing():
            return
        if rt.retries_spent(server, self.tried, why):
            self.transport.close()
            return
        self._connect()

    def eof_received(self) -> bool:
        self.client_eof = True
        if self.upstream_done:
            return False
        upstream = self.upstream
        if upstream is None or upstream.transport is None:
            return True  # passed on once the upstream connection is up
        if upstream.transport.can_write_eof():
            upstream.transport.write_eof()
        return True

    def upstream_eof(self) -> bool:
        self.upstream_done = True
        if self.client_eof:
            self.transport.close()
            return False
        if self.transport.can_write_eof():
            self.transport.write_eof()
        return True

    def upstream_lost(self) -> None:
        self.upstream_done = True
        self.transport.close()

    def pause_writing(self) -> None:
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None:
            upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None:
            upstream.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.rt.leave(self, self.slot, self.queued)
        if self.connect_task is not None:
            self.connect_task.cancel()
            self.connect_task = None
        upstream = self.upstream
        if upstream is not None:
            self.upstream = None
            if self.server is not None:
                self.server.active -= 1
            if upstream.transport is not None:
                upstream.transport.close()

    def expire(self) -> None:
        if self.queued:  # waited timeouts.queue for a slot
            self.queued = False
            self.rt.drop_waiting(self)
            self.transport.close()
            return
        if self.connect_task is not None and self.server is not None:
            self.connect_task.cancel()
            self.connect_task = None
            self._connect_failed(self.server, "connect timeout")
            return
        upstream = self.upstream
        quiet = min(
            quiet_seconds(self.transport),
            quiet_seconds(upstream.transport if upstream is not None else None),
        )
        left = self.rt.timeouts.tcp_idle - quiet
        if left > 0:
            self.deadline = self.rt.now + left
            return
        self.transport.close()
