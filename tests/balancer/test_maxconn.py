"""Per-frontend maxconn: connections above it wait (bounded in number and time) for a slot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hakeeper.balancer.config import parse_config
from hakeeper.balancer.service import Balancer, files_needed, serving
from hakeeper.lab.processes import free_port
from tests.balancer.backends import EchoBackend, HttpBackend
from tests.balancer.conftest import config, exchange, until

REQUEST = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.fixture
async def backend() -> AsyncIterator[HttpBackend]:
    b = await HttpBackend("a").start()
    try:
        yield b
    finally:
        await b.stop()


async def open_served(lb: Balancer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A keep-alive client that got one answer, so it holds a slot until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", lb.port_of("fe"))
    writer.write(REQUEST)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200")
    return reader, writer


async def test_a_connection_above_maxconn_waits_then_is_served(backend: HttpBackend) -> None:
    cfg = config([{"name": "a", "address": backend.address}], frontend={"maxconn": 1})
    async with serving(cfg) as lb:
        _, first = await open_served(lb)
        reader, second = await asyncio.open_connection("127.0.0.1", lb.port_of("fe"))
        second.write(REQUEST)
        with pytest.raises(TimeoutError):  # held unread: no slot yet
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 0.5)
        assert len(lb.frontends["fe"].waiting) == 1
        first.close()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        second.close()
    assert head.startswith(b"HTTP/1.1 200")


async def test_a_waiting_connection_gets_503_after_the_queue_timeout(
    backend: HttpBackend,
) -> None:
    cfg = config(
        [{"name": "a", "address": backend.address}],
        frontend={"maxconn": 1},
        timeouts={"queue": 0.5},
    )
    async with serving(cfg) as lb:
        _, first = await open_served(lb)
        started = asyncio.get_running_loop().time()
        responses = await exchange(lb.port_of("fe"), REQUEST)
        waited = asyncio.get_running_loop().time() - started
        first.close()
    assert [r.status for r in responses] == [503]
    assert 0.4 < waited < 5


async def test_a_connection_beyond_maxqueue_is_refused_at_once(backend: HttpBackend) -> None:
    cfg = config(
        [{"name": "a", "address": backend.address}], frontend={"maxconn": 1, "maxqueue": 0}
    )
    async with serving(cfg) as lb:
        _, first = await open_served(lb)
        responses = await exchange(lb.port_of("fe"), REQUEST, timeout=2)
        first.close()
        refused = lb.frontends["fe"].refused_total
    assert [r.status for r in responses] == [503]
    assert refused == 1


async def test_a_waiting_client_that_leaves_gives_up_its_place(backend: HttpBackend) -> None:
    cfg = config(
        [{"name": "a", "address": backend.address}], frontend={"maxconn": 1, "maxqueue": 1}
    )
    async with serving(cfg) as lb:
        rt = lb.frontends["fe"]
        _, first = await open_served(lb)
        _, leaving = await asyncio.open_connection("127.0.0.1", lb.port_of("fe"))
        await until(lambda: len(rt.waiting) == 1)
        leaving.close()
        await until(lambda: not rt.waiting)
        reader, third = await asyncio.open_connection("127.0.0.1", lb.port_of("fe"))
        third.write(REQUEST)
        await until(lambda: len(rt.waiting) == 1)  # queued, not refused
        first.close()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        third.close()
    assert head.startswith(b"HTTP/1.1 200")
    assert rt.refused_total == 0


async def test_a_slot_given_back_serves_the_oldest_waiting_first(backend: HttpBackend) -> None:
    cfg = config([{"name": "a", "address": backend.address}], frontend={"maxconn": 1})
    async with serving(cfg) as lb:
        _, first = await open_served(lb)
        waiting = []
        for i in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", lb.port_of("fe"))
            writer.write(f"GET /{i} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
            waiting.append((reader, writer))
            await until(lambda: len(lb.frontends["fe"].waiting) == len(waiting))
        first.close()
        for reader, writer in waiting:
            await asyncio.wait_for(reader.read(), 10)  # Connection: close ends each one
            writer.close()
    assert [url for _, url, _, _ in backend.seen[1:]] == [b"/0", b"/1", b"/2"]


async def test_tcp_mode_holds_a_connection_above_maxconn_until_a_slot_frees() -> None:
    echo = await EchoBackend().start()
    try:
        cfg = config([{"name": "e", "address": echo.address}], mode="tcp", frontend={"maxconn": 1})
        async with serving(cfg) as lb:
            r1, w1 = await asyncio.open_connection("127.0.0.1", lb.port_of("fe"))
            w1.write(b"one")
            assert await asyncio.wait_for(r1.readexactly(3), 10) == b"one"
            r2, w2 = await asyncio.open_connection("127.0.0.1", lb.port_of("fe"))
            w2.write(b"two")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(r2.readexactly(3), 0.5)
            w1.close()
            assert await asyncio.wait_for(r2.readexactly(3), 10) == b"two"
            w2.close()
    finally:
        await echo.stop()


async def test_tcp_mode_closes_a_connection_that_waited_past_the_queue_timeout() -> None:
    echo = await EchoBackend().start()
    try:
        cfg = config(
            [{"name": "e", "address": echo.address}],
            mode="tcp",
            frontend={"maxconn": 1},
            timeouts={"queue": 0.5},
        )
        async with serving(cfg) as lb:
            r1, w1 = await asyncio.open_connection("127.0.0.1", lb.port_of("fe"))
            w1.write(b"one")
            assert await asyncio.wait_for(r1.readexactly(3), 10) == b"one"
            r2, w2 = await asyncio.open_connection("127.0.0.1", lb.port_of("fe"))
            assert await asyncio.wait_for(r2.read(), 10) == b""  # closed, nothing relayed
            w2.close()
            w1.close()
            assert not lb.frontends["fe"].waiting
    finally:
        await echo.stop()


async def test_a_reload_raising_maxconn_admits_the_waiting(backend: HttpBackend) -> None:
    servers = [{"name": "a", "address": backend.address}]
    bind = f"127.0.0.1:{free_port()}"  # a reload keeps a listener whose bind is unchanged
    async with serving(config(servers, frontend={"bind": bind, "maxconn": 1})) as lb:
        _, first = await open_served(lb)
        reader, second = await asyncio.open_connection("127.0.0.1", lb.port_of("fe"))
        second.write(REQUEST)
        await until(lambda: bool(lb.frontends["fe"].waiting))
        await lb.reload(config(servers, frontend={"bind": bind, "maxconn": 2}))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        first.close()
        second.close()
    assert head.startswith(b"HTTP/1.1 200")


def test_defaults_are_haproxy_like_and_safe() -> None:
    cfg = parse_config(
        {
            "frontend": [{"name": "f", "bind": "127.0.0.1:0", "backend": "b"}],
            "backend": [{"name": "b", "servers": [{"name": "s", "address": "127.0.0.1:1"}]}],
        },
        "t",
    )
    assert (cfg.frontend[0].maxconn, cfg.frontend[0].maxqueue) == (10000, 1024)
    assert cfg.timeouts.queue == 5.0
    assert files_needed(cfg) >= 2 * 10000 + 1024
