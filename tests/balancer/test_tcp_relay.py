"""The L4 relay end to end: echo servers, half-close, redispatch, backpressure, idle timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hakeeper.balancer.service import serving
from hakeeper.lab.processes import free_port
from tests.balancer.backends import EchoBackend
from tests.balancer.conftest import config


@pytest.fixture
async def echo() -> AsyncIterator[EchoBackend]:
    backend = await EchoBackend().start()
    try:
        yield backend
    finally:
        await backend.stop()


async def test_bytes_flow_both_ways_and_half_close_is_passed_on(echo: EchoBackend) -> None:
    cfg = config([{"name": "e", "address": echo.address}], mode="tcp")
    async with serving(cfg) as lb:
        reader, writer = await asyncio.open_connection("127.0.0.1", lb.port_of("fe"))
        writer.write(b"hello ")
        writer.write(b"world")
        writer.write_eof()  # the echo server answers <eof> only once it sees ours
        data = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    assert data == b"hello world<eof>"


async def test_connect_failure_is_redispatched(echo: EchoBackend) -> None:
    dead = free_port()
    servers = [
        {"name": "dead", "address": f"127.0.0.1:{dead}"},
        {"name": "e", "address": echo.address},
    ]
    async with serving(config(servers, mode="tcp")) as lb:
        for _ in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", lb.port_of("fe"))
            writer.write(b"x")
            writer.write_eof()
            assert await asyncio.wait_for(reader.read(), 10) == b"x<eof>"
            writer.close()


async def test_large_transfer_survives_backpressure(echo: EchoBackend) -> None:
    cfg = config([{"name": "e", "address": echo.address}], mode="tcp")
    payload = bytes(range(256)) * 4096 * 8  # 8 MiB: far beyond every socket buffer
    async with serving(cfg) as lb:
        reader, writer = await asyncio.open_connection("127.0.0.1", lb.port_of("fe"))

        async def send() -> None:
            writer.write(payload)
            await writer.drain()
            writer.write_eof()

        sender = asyncio.create_task(send())
        received = bytearray()
        async with asyncio.timeout(60):
            while chunk := await reader.read(1 << 16):
                received += chunk
        await sender
        writer.close()
    assert bytes(received) == payload + b"<eof>"


async def test_idle_tcp_connection_is_closed(echo: EchoBackend) -> None:
    cfg = config([{"name": "e", "address": echo.address}], mode="tcp", timeouts={"tcp_idle": 0.3})
    async with serving(cfg) as lb:
        reader, writer = await asyncio.open_connection("127.0.0.1", lb.port_of("fe"))
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()


async def test_no_server_closes_the_client() -> None:
    dead = free_port()
    cfg = config([{"name": "dead", "address": f"127.0.0.1:{dead}"}], mode="tcp")
    async with serving(cfg) as lb:
        reader, writer = await asyncio.open_connection("127.0.0.1", lb.port_of("fe"))
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()


async def test_tcp_connection_with_traffic_outlives_its_idle_timeout(echo: EchoBackend) -> None:
    cfg = config([{"name": "e", "address": echo.address}], mode="tcp", timeouts={"tcp_idle": 0.5})
    async with serving(cfg) as lb:
        reader, writer = await asyncio.open_connection("127.0.0.1", lb.port_of("fe"))
        try:
            for i in range(8):  # 1.6 s in all, never 0.5 s without a byte
                writer.write(b"%d" % i)
                assert await asyncio.wait_for(reader.readexactly(1), 10) == b"%d" % i
                await asyncio.sleep(0.2)
        finally:
            writer.close()
