"""The API's listening socket, with the bounds aiohttp leaves to its user.

aiohttp parses a request head only once it has arrived, and keeps any number of connections:
a client sending one byte a minute (slowloris), or opening thousands of sockets, would hold
them all. Here each connection goes through `_Guard`, which forwards everything to aiohttp's
own handler, closes a connection whose first request head has not ended within
`HEAD_TIMEOUT`, and refuses connections beyond ``max_connections`` (closed at once).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from aiohttp import web

#: Seconds a new connection has to send its whole first request head.
HEAD_TIMEOUT = 10.0
_END_OF_HEAD = b"\r\n\r\n"


class _Guard(asyncio.Protocol):
    def __init__(self, inner: asyncio.Protocol, gate: _Gate) -> None:
        self._inner = inner
        self._gate = gate
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""
        self._admitted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if self._gate.open >= self._gate.limit:
            transport.abort()
            return
        self._admitted = True
        self._gate.open += 1
        self._timer = asyncio.get_running_loop().call_later(HEAD_TIMEOUT, transport.abort)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            seen = self._tail + data
            if _END_OF_HEAD in seen:
                self._timer.cancel()
                self._timer = None
            else:
                self._tail = seen[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._admitted:
            self._gate.open -= 1
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class _Gate:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0


async def listen(
    runner: web.AppRunner, host: str, port: int, tls: ssl.SSLContext | None, limit: int
) -> asyncio.Server:
    """Open the listener for ``runner`` (set up already) with the bounds above."""
    server: Any = runner.server
    assert server is not None
    gate = _Gate(limit)
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: _Guard(server(), gate), host, port, ssl=tls, backlog=128, reuse_address=True
    )
