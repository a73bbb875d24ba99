"""Small asyncio HTTP/1.1 and TCP servers on 127.0.0.1 that the balancer tests relay to.

Each `HttpBackend` answers ``<name>`` with keep-alive, counts requests, records the request
heads it saw, and can be told to misbehave (``mode``: ``ok``, ``garbage``, ``hang``,
``status`` with ``status_code``). `EchoBackend` echoes TCP bytes and shuts its write side
when the client does. `ScriptedBackend` runs a coroutine per connection (hostile servers).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import cast

import httptools


class _HttpConn(asyncio.Protocol):
    def __init__(self, backend: HttpBackend) -> None:
        self.backend = backend
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.head: list[tuple[bytes, bytes]] = []
        self.url = b""
        self.body = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        self.backend.conns.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.backend.conns.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_message_begin(self) -> None:
        self.head = []
        self.url = b""
        self.body = b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        backend = self.backend
        assert self.transport is not None
        backend.requests += 1
        backend.seen.append((self.parser.get_method(), self.url, dict(self.head), self.body))
        mode = backend.mode
        if mode == "hang":
            return
        if mode == "garbage":
            self.transport.write(b"this is not http\r\n\r\n")
            self.transport.close()
            return
        if mode == "close":
            self.transport.close()
            return
        body = backend.name.encode() if not self.body else self.body
        status = backend.status_code
        head = (
            f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n"
            f"Connection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-Backend: {backend.name}\r\n\r\n"
        ).encode()
        self.transport.write(head if self.parser.get_method() == b"HEAD" else head + body)
        if not self.parser.should_keep_alive():
            self.transport.close()


class HttpBackend:
    def __init__(self, name: str, host: str = "127.0.0.1") -> None:
        self.name = name
        self.host = host
        self.port = 0
        self.requests = 0
        self.mode = "ok"
        self.status_code = 200
        self.seen: list[tuple[bytes, bytes, dict[bytes, bytes], bytes]] = []
        self.conns: set[asyncio.Transport] = set()
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self, port: int = 0) -> HttpBackend:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _HttpConn(self), self.host, port or self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Like a killed process: listener gone, every connection reset."""
        if self._server is not None:
            self._server.close()
            for transport in list(self.conns):
                transport.abort()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._server.wait_closed()
            self._server = None


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def eof_received(self) -> bool:
        self.transport.write(b"<eof>")
        self.transport.write_eof()
        return True


class EchoBackend:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> EchoBackend:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(_Echo, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class ScriptedBackend:
    """A server on 127.0.0.1 that runs ``script`` for each connection (misbehaving backends);
    it counts connections and closes every one when stopped."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.port = 0
        self.connections = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            await self.script(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the balancer closed it: what the hostile tests want
        finally:
            self._writers.discard(writer)
            writer.close()

    async def start(self) -> ScriptedBackend:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._server.wait_closed()
            self._server = None
