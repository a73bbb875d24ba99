"""Active health checks: TCP connect, or an HTTP request with expected status and body.

Every ``inter`` seconds one round checks every server of a backend concurrently, each check
bounded by ``timeout``; `Backend.record_check` turns the results into up/down transitions
(``fall`` failures in a row mark a server down, ``rise`` successes bring it back). The round
reads the backend's current server list, so it follows reloads and runtime changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from hakeeper.balancer.config import CheckSpec
from hakeeper.balancer.servers import Backend, Server

log = logging.getLogger("hakeeper.balancer")

MAX_CHECK_RESPONSE = 65536


async def tcp_check(host: str, port: int, timeout: float) -> tuple[bool, str]:
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return False, "connect timeout"
    except OSError as exc:
        return False, f"connect: {exc.strerror or type(exc).__name__}"
    writer.close()
    return True, "connected"


async def http_check(host: str, port: int, check: CheckSpec) -> tuple[bool, str]:
    request = (
        f"{check.method} {check.path} HTTP/1.0\r\nHost: {check.host}\r\n"
        "User-Agent: hakeeper-check\r\nConnection: close\r\n\r\n"
    ).encode()
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(check.timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            response = await reader.read(MAX_CHECK_RESPONSE)
            while len(response) < MAX_CHECK_RESPONSE:
                more = await reader.read(MAX_CHECK_RESPONSE - len(response))
                if not more:
                    break
                response += more
    except TimeoutError:
        return False, "check timeout"
    except OSError as exc:
        return False, f"connect: {exc.strerror or type(exc).__name__}"
    finally:
        if writer is not None:
            writer.close()
    return judge_http(response, check)


def judge_http(response: bytes, check: CheckSpec) -> tuple[bool, str]:
    head, _, body = response.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return False, "not an HTTP response"
    status = int(parts[1])
    if status != check.expect_status:
        return False, f"status {status}, expected {check.expect_status}"
    if check.expect_body is not None and check.expect_body.encode() not in body:
        return False, f"body lacks {check.expect_body!r}"
    return True, f"status {status}"


async def check_server(server: Server, check: CheckSpec) -> tuple[bool, str]:
    if check.type == "http":
        return await http_check(server.host, server.port, check)
    return await tcp_check(server.host, server.port, check.timeout_s)


class HealthChecker:
    def __init__(self, backend: Backend, clock: Callable[[], float]) -> None:
        self.backend = backend
        self.clock = clock

    async def round(self) -> None:
        check = self.backend.spec.check
        servers = list(self.backend.servers.values())
        results = await asyncio.gather(*(check_server(s, check) for s in servers))
        now = self.clock()
        for server, (ok, detail) in zip(servers, results, strict=True):
            if server.admin == "maint":
                continue
            self.backend.record_check(server, ok, now, detail)

    async def run(self) -> None:
        while True:
            check = self.backend.spec.check
            if check.type == "none":
                await asyncio.sleep(1.0)
                continue
            await self.round()
            await asyncio.sleep(self.backend.spec.check.inter)
