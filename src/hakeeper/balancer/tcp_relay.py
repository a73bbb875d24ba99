"""Mode ``tcp`` (L4): bytes both ways between a client and one server.

- the client's reading stays paused until the upstream connection is up, so nothing is
  buffered for a connection that may still fail;
- a failed or timed-out connect is redispatched to another server (``retries`` times),
  nothing having been sent yet;
- half-close: an EOF from one side becomes ``write_eof`` toward the other, and the
  connection ends when both directions are done;
- backpressure: when one side's write buffer is over its high-water mark, reading from the
  other side pauses until it drains;
- idle timeout via the frontend's deadline sweep (``seen`` flag, no per-chunk clock read).
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from hakeeper.balancer.runtime import FrontendRuntime
from hakeeper.balancer.servers import Server

log = logging.getLogger("hakeeper.balancer")


class TcpUpstream(asyncio.Protocol):
    __slots__ = ("client", "transport")

    def __init__(self, client: TcpClient) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        client = self.client
        client.seen = True
        client.transport.write(data)

    def eof_received(self) -> bool:
        return self.client.upstream_eof()

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.upstream_lost()

    def pause_writing(self) -> None:
        self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        self.client.transport.resume_reading()


class TcpClient(asyncio.Protocol):
    __slots__ = (
        "client_eof",
        "connect_task",
        "deadline",
        "early",
        "key",
        "rt",
        "seen",
        "server",
        "transport",
        "tried",
        "upstream",
        "upstream_done",
    )

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
        self.seen = False
        self.deadline = 0.0
        self.key = 0

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
        self.seen = True
        self.deadline = self.rt.now + self.rt.timeouts.tcp_idle
        assert upstream.transport is not None
        if self.early:
            upstream.transport.write(b"".join(self.early))
            self.early = []
        if self.client_eof:
            upstream.transport.write_eof()
        else:
            self.transport.resume_reading()

    def _connect_failed(self, server: Server, why: str) -> None:
        rt = self.rt
        rt.backend.observe_connect_error(server, rt.now)
        self.tried.append(server)
        self.server = None
        if self.transport.is_closing():
            return
        if len(self.tried) > rt.backend.spec.retries:
            log.warning(
                "event=connect_failed frontend=%s server=%s reason=%s retries=exhausted",
                rt.spec.name,
                server.name,
                why.replace(" ", "_"),
            )
            self.transport.close()
            return
        self._connect()

    def data_received(self, data: bytes) -> None:
        self.seen = True
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None:
            upstream.transport.write(data)
        else:
            # uvloop may deliver a first read even though reading was paused at once.
            self.early.append(data)

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
        self.rt.conns.discard(self)
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
        if self.connect_task is not None and self.server is not None:
            self.connect_task.cancel()
            self.connect_task = None
            self._connect_failed(self.server, "connect timeout")
            return
        if self.seen:
            self.seen = False
            self.deadline = self.rt.now + self.rt.timeouts.tcp_idle
            return
        self.transport.close()
