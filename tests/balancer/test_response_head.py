"""Bounds on heads both ways: a response head in size and time, a request head in time."""

from __future__ import annotations

import asyncio

from hakeeper.balancer.service import serving
from tests.balancer.backends import ScriptedBackend
from tests.balancer.conftest import RESET, SLOW_HEAD, config, get, send_slowly


async def read_request(reader: asyncio.StreamReader) -> None:
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)


async def test_a_response_head_over_max_header_bytes_in_one_read_is_a_502() -> None:
    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 20000 + b"\r\nContent-Length: 2\r\n\r\nok"
        )
        await reader.read()

    backend = await ScriptedBackend(big).start()
    try:
        async with serving(config([{"name": "s", "address": backend.address}])) as lb:
            response = await get(lb.port_of("fe"))
    finally:
        await backend.stop()
    assert response.status == 502


async def test_a_response_head_growing_past_max_header_bytes_is_a_502() -> None:
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for i in range(200):  # 200 KiB at most, far over the 16 KiB limit
            writer.write(b"X-%d: %s\r\n" % (i, b"a" * 1000))
            await writer.drain()
            await asyncio.sleep(0.01)

    backend = await ScriptedBackend(endless).start()
    try:
        async with serving(config([{"name": "s", "address": backend.address}])) as lb:
            response = await get(lb.port_of("fe"))
            assert not lb.backends["be"].servers["s"].idle  # that connection was closed
    finally:
        await backend.stop()
    assert response.status == 502


async def test_a_response_head_trickled_past_the_response_timeout_is_a_504() -> None:
    closed = asyncio.Event()

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(100):  # 10 s at most
            writer.write(b"X-A: 1\r\n")  # small: the size bound is not what stops it
            await asyncio.sleep(0.1)
            if reader.at_eof() or writer.is_closing():  # closed, or reset by our write
                closed.set()
                return

    backend = await ScriptedBackend(trickle).start()
    try:
        cfg = config([{"name": "s", "address": backend.address}], timeouts={"response": 1.0})
        async with serving(cfg) as lb:
            started = asyncio.get_running_loop().time()
            response = await get(lb.port_of("fe"))
            took = asyncio.get_running_loop().time() - started
            await asyncio.wait_for(closed.wait(), 10)  # the upstream connection was closed
    finally:
        await backend.stop()
    assert response.status == 504
    assert took < 5


async def test_a_large_head_in_pieces_within_the_bounds_is_relayed() -> None:
    async def pieces(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        head = b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * 12000 + b"\r\nContent-Length: 2\r\n\r\nok"
        for i in range(0, len(head), 4000):
            writer.write(head[i : i + 4000])
            await writer.drain()
            await asyncio.sleep(0.05)
        await reader.read()

    backend = await ScriptedBackend(pieces).start()
    try:
        async with serving(config([{"name": "s", "address": backend.address}])) as lb:
            response = await get(lb.port_of("fe"))
    finally:
        await backend.stop()
    assert response.status == 200
    assert response.headers[b"x-big"] == b"b" * 12000
    assert response.body == b"ok"


async def test_a_slow_body_keeps_flowing_past_the_response_timeout() -> None:
    async def slow_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(5):  # 2 s in all, each gap well inside the 1 s response timeout
            await asyncio.sleep(0.4)
            writer.write(b"2\r\nab\r\n")
        writer.write(b"0\r\n\r\n")
        await reader.read()

    backend = await ScriptedBackend(slow_body).start()
    try:
        cfg = config([{"name": "s", "address": backend.address}], timeouts={"response": 1.0})
        async with serving(cfg) as lb:
            response = await get(lb.port_of("fe"))
    finally:
        await backend.stop()
    assert response.status == 200
    assert response.body == b"ab" * 5


async def test_a_request_head_sent_a_byte_at_a_time_is_cut_at_client_header() -> None:
    backend = await ScriptedBackend(read_request).start()
    try:
        cfg = config([{"name": "s", "address": backend.address}], timeouts={"client_header": 1.0})
        async with serving(cfg) as lb:
            answer, took = await send_slowly(lb.port_of("fe"), SLOW_HEAD, 0.1)
    finally:
        await backend.stop()
    assert answer.startswith(b"HTTP/1.1 408") or answer == RESET
    assert 0.9 < took < 5
    assert backend.connections == 0  # nothing reached the server
