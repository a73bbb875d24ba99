"""Helpers for the balancer tests: configs in a few words, a raw HTTP/1.1 client, and the
L7 relay's two protocol objects wired to fake transports (no sockets)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httptools

from hakeeper.balancer.config import BalancerConfig, parse_config
from hakeeper.balancer.http_downstream import HttpDownstream
from hakeeper.balancer.http_upstream import HttpUpstream
from hakeeper.balancer.runtime import FrontendRuntime
from hakeeper.balancer.servers import Backend


def config(
    servers: list[dict[str, Any]],
    *,
    mode: str = "http",
    backend: dict[str, Any] | None = None,
    timeouts: dict[str, Any] | None = None,
    limits: dict[str, Any] | None = None,
    frontend: dict[str, Any] | None = None,
    api: dict[str, Any] | None = None,
) -> BalancerConfig:
    data: dict[str, Any] = {
        "frontend": [
            {"name": "fe", "bind": "127.0.0.1:0", "mode": mode, "backend": "be", **(frontend or {})}
        ],
        "backend": [
            {
                "name": "be",
                "servers": servers,
                "check": {"type": "none"},
                **(backend or {}),
            }
        ],
        "timeouts": {"sweep": 0.1, **(timeouts or {})},
    }
    if limits:
        data["limits"] = limits
    if api:
        data["api"] = api
    return parse_config(data, "test")


@dataclass
class Response:
    status: int = 0
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytes = b""
    done: bool = False


class _Collector:
    def __init__(self) -> None:
        self.responses: list[Response] = []
        self.parser = httptools.HttpResponseParser(self)

    def on_message_begin(self) -> None:
        self.responses.append(Response())

    def on_header(self, name: bytes, value: bytes) -> None:
        self.responses[-1].headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        self.responses[-1].status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.responses[-1].body += body

    def on_message_complete(self) -> None:
        self.responses[-1].done = True


async def exchange(
    port: int, data: bytes, count: int = 1, timeout: float = 10.0, head: bool = False
) -> list[Response]:
    """Send raw bytes, read until ``count`` complete responses (or EOF); close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    collector = _Collector()
    try:
        writer.write(data)
        async with asyncio.timeout(timeout):
            while sum(r.done for r in collector.responses) < count:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                collector.parser.feed_data(chunk)
                if head and collector.responses and collector.responses[-1].status:
                    collector.responses[-1].done = True
    finally:
        writer.close()
    return collector.responses


async def get(port: int, path: str = "/", headers: str = "") -> Response:
    request = f"GET {path} HTTP/1.1\r\nHost: test\r\n{headers}\r\n".encode()
    responses = await exchange(port, request)
    assert responses, "no response"
    return responses[0]


async def keep_alive_gets(port: int, n: int, statuses: Counter[int]) -> None:
    """``n`` GETs one after the other on one keep-alive connection, counting the statuses
    (bodies read by their Content-Length)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(n):
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            statuses[int(head.split()[1])] += 1
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
    finally:
        writer.close()


RESET = b"(reset by the balancer)"


async def send_slowly(port: int, head: bytes, every: float) -> tuple[bytes, float]:
    """Send ``head`` a byte at a time until the balancer answers or closes; the answer and
    how long it took."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    answer = asyncio.create_task(reader.read())
    try:
        for byte in head:
            if answer.done():
                break
            writer.write(bytes([byte]))
            await asyncio.sleep(every)
        try:
            return await asyncio.wait_for(answer, 10), loop.time() - started
        except ConnectionResetError:
            # Our next byte reached a socket the balancer had closed after its 408: the
            # kernel answered with a reset, dropping the 408 unread. Cut all the same.
            return RESET, loop.time() - started
    finally:
        answer.cancel()
        writer.close()


SLOW_HEAD = b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"s" * 200  # 20 s at 0.1 s a byte


async def until(condition: Callable[[], bool]) -> None:
    """Poll (every 20 ms, 10 s at most) for a state of the balancer no event announces."""
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    abort = close

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class FakeLoop:
    """What the relay asks of its loop: the clock and call_soon (the write batch's flush)."""

    def time(self) -> float:
        return 0.0

    def call_soon(self, callback: object) -> None: ...


def fake_runtime(cfg: BalancerConfig) -> FrontendRuntime:
    """The runtime of ``cfg``'s first frontend and backend, on a loop that never runs."""
    backend = Backend(cfg.backend[0])
    return FrontendRuntime(cfg.frontend[0], backend, cfg.timeouts, cfg.limits, FakeLoop())  # type: ignore[arg-type]


def wire() -> tuple[HttpDownstream, FakeTransport, FakeTransport, FrontendRuntime]:
    """A client connection of a one-server frontend whose server has one idle upstream
    connection: the client side, its transport, the upstream's transport, the runtime."""
    rt = fake_runtime(config([{"name": "a", "address": "127.0.0.1:1"}]))
    server = rt.backend.servers["a"]
    upstream = HttpUpstream(server, rt)
    up_transport = FakeTransport()
    upstream.connection_made(up_transport)  # type: ignore[arg-type]
    server.idle.append(upstream)
    client = HttpDownstream(rt)
    client_transport = FakeTransport()
    client.connection_made(client_transport)  # type: ignore[arg-type]
    return client, client_transport, up_transport, rt
