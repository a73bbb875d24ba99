"""The L7 relay end to end on loopback: a real balancer between raw clients and test servers."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from hakeeper.balancer.service import Balancer, serving
from hakeeper.lab.processes import free_port
from tests.balancer.backends import HttpBackend
from tests.balancer.conftest import Response, config, exchange, get, keep_alive_gets


@pytest.fixture
async def two() -> AsyncIterator[tuple[HttpBackend, HttpBackend]]:
    a = await HttpBackend("a").start()
    b = await HttpBackend("b").start()
    try:
        yield a, b
    finally:
        await a.stop()
        await b.stop()


def servers(*backends: HttpBackend, **extra: object) -> list[dict[str, object]]:
    return [{"name": b.name, "address": b.address, **extra} for b in backends]


async def test_keep_alive_requests_alternate_round_robin(two: tuple[HttpBackend, ...]) -> None:
    async with serving(config(servers(*two))) as lb:
        request = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
        responses = await exchange(lb.port_of("fe"), request * 4, count=4)
    assert [r.body for r in responses] == [b"a", b"b", b"a", b"b"]


async def test_pipelined_requests_are_answered_in_order(two: tuple[HttpBackend, ...]) -> None:
    async with serving(config(servers(*two))) as lb:
        pipeline = b"".join(f"GET /{i} HTTP/1.1\r\nHost: t\r\n\r\n".encode() for i in range(10))
        responses = await exchange(lb.port_of("fe"), pipeline, count=10)
    assert len(responses) == 10
    paths = [url for backend in two for (_, url, _, _) in backend.seen]
    assert sorted(paths) == sorted(f"/{i}".encode() for i in range(10))
    assert [r.headers[b"x-backend"] for r in responses] == [b"a", b"b"] * 5


async def test_upstream_connections_are_pooled_across_clients(
    two: tuple[HttpBackend, ...],
) -> None:
    async with serving(config(servers(*two))) as lb:
        for _ in range(6):
            assert (await get(lb.port_of("fe"))).status == 200
        pooled = sum(len(s.idle) for s in lb.backends["be"].servers.values())
    assert pooled == 2


async def test_forwarded_headers_name_the_client(two: tuple[HttpBackend, ...]) -> None:
    async with serving(config(servers(two[0]))) as lb:
        await get(
            lb.port_of("fe"), headers="X-Forwarded-For: 10.1.1.1\r\nForwarded: for=10.1.1.1\r\n"
        )
    _, _, headers, _ = two[0].seen[0]
    assert headers[b"x-forwarded-for"] == b"10.1.1.1, 127.0.0.1"
    assert headers[b"forwarded"] == b"for=10.1.1.1, for=127.0.0.1;proto=http"


async def test_hop_by_hop_headers_are_removed_both_ways(two: tuple[HttpBackend, ...]) -> None:
    async with serving(config(servers(two[0]))) as lb:
        response = await get(
            lb.port_of("fe"),
            headers="Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\n"
            "TE: trailers\r\n",
        )
    _, _, headers, _ = two[0].seen[0]
    assert not {b"connection", b"x-hop", b"keep-alive", b"te"} & set(headers)
    assert b"keep-alive" not in response.headers
    assert b"connection" not in response.headers
    assert response.headers[b"x-backend"] == b"a"


async def test_chunked_request_body_reaches_the_server(two: tuple[HttpBackend, ...]) -> None:
    async with serving(config(servers(two[0]))) as lb:
        request = (
            b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        responses = await exchange(lb.port_of("fe"), request)
    assert responses[0].body == b"hello world"
    assert two[0].seen[0][3] == b"hello world"


async def through_one_backend(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    request: bytes,
) -> list[Response]:
    """``request`` through a balancer whose one server is an asyncio server with ``handler``."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with serving(config([{"name": "s", "address": f"127.0.0.1:{port}"}])) as lb:
            return await exchange(lb.port_of("fe"), request)
    finally:
        server.close()


async def test_response_without_length_reaches_a_1_1_client_chunked() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nstreamed until eof")
        await writer.drain()
        writer.close()

    responses = await through_one_backend(handler, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert responses[0].headers[b"transfer-encoding"] == b"chunked"
    assert responses[0].body == b"streamed until eof"


async def test_head_response_has_no_body_and_connection_stays_usable(
    two: tuple[HttpBackend, ...],
) -> None:
    async with serving(config(servers(two[0]))) as lb:
        reader, writer = await asyncio.open_connection("127.0.0.1", lb.port_of("fe"))
        writer.write(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        second = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        body = await asyncio.wait_for(reader.readexactly(1), 5)
        writer.close()
    assert head.startswith(b"HTTP/1.1 200")
    assert second.startswith(b"HTTP/1.1 200")
    assert body == b"a"


async def test_malformed_request_gets_400(two: tuple[HttpBackend, ...]) -> None:
    async with serving(config(servers(two[0]))) as lb:
        responses = await exchange(lb.port_of("fe"), b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
    assert responses[0].status == 400
    assert two[0].requests == 0


async def test_oversized_header_block_gets_431(two: tuple[HttpBackend, ...]) -> None:
    cfg = config(servers(two[0]), limits={"max_header_bytes": 2048})
    async with serving(cfg) as lb:
        big = b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"x" * 4000 + b"\r\n\r\n"
        responses = await exchange(lb.port_of("fe"), big)
    assert responses[0].status == 431


async def test_slowloris_is_cut_by_the_header_timeout(two: tuple[HttpBackend, ...]) -> None:
    cfg = config(servers(two[0]), timeouts={"client_header": 0.5})
    async with serving(cfg) as lb:
        reader, writer = await asyncio.open_connection("127.0.0.1", lb.port_of("fe"))
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n")

        async def trickle() -> None:
            # A header line every 0.1 s for 6 s would keep a per-read timeout happy.
            for _ in range(60):
                writer.write(b"X-Slow: 1\r\n")
                await asyncio.sleep(0.1)

        loop = asyncio.get_running_loop()
        started = loop.time()
        task = asyncio.create_task(trickle())
        try:
            data = await asyncio.wait_for(reader.read(), 10)
        except ConnectionResetError:
            data = b"(reset)"
        elapsed = loop.time() - started
        task.cancel()
        writer.close()
    assert data.startswith((b"HTTP/1.1 408", b"(reset)"))
    assert elapsed < 5.0
    assert two[0].requests == 0


async def test_idle_keep_alive_client_is_closed(two: tuple[HttpBackend, ...]) -> None:
    cfg = config(servers(two[0]), timeouts={"client_idle": 0.3})
    async with serving(cfg) as lb:
        reader, writer = await asyncio.open_connection("127.0.0.1", lb.port_of("fe"))
        # Idle after a request: before its first one a connection has client_header.
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        await reader.readexactly(int(head.lower().split(b"content-length: ")[1].split(b"\r")[0]))
        async with asyncio.timeout(10):
            assert await reader.read() == b""
        writer.close()


async def test_a_new_connection_that_sends_nothing_is_closed_at_client_header(
    two: tuple[HttpBackend, ...],
) -> None:
    cfg = config(servers(two[0]), timeouts={"client_header": 0.3, "client_idle": 60})
    async with serving(cfg) as lb:
        reader, writer = await asyncio.open_connection("127.0.0.1", lb.port_of("fe"))
        async with asyncio.timeout(10):
            assert await reader.read() == b""
        writer.close()


async def test_upstream_garbage_gets_502(two: tuple[HttpBackend, ...]) -> None:
    two[0].mode = "garbage"
    async with serving(config(servers(two[0]))) as lb:
        response = await get(lb.port_of("fe"))
    assert response.status == 502


async def test_silent_upstream_gets_504(two: tuple[HttpBackend, ...]) -> None:
    two[0].mode = "hang"
    cfg = config(servers(two[0]), timeouts={"response": 0.3})
    async with serving(cfg) as lb:
        response = await get(lb.port_of("fe"))
    assert response.status == 504


async def test_no_server_up_gets_503() -> None:
    dead = free_port()
    cfg = config([{"name": "x", "address": f"127.0.0.1:{dead}"}], backend={"retries": 1})
    async with serving(cfg) as lb:
        response = await get(lb.port_of("fe"))
    assert response.status == 503


async def test_connect_failure_is_redispatched_to_another_server(
    two: tuple[HttpBackend, ...],
) -> None:
    dead = free_port()
    cfg = config([{"name": "dead", "address": f"127.0.0.1:{dead}"}, *servers(two[0])])
    async with serving(cfg) as lb:
        bodies = [(await get(lb.port_of("fe"))).body for _ in range(4)]
        dead_server = lb.backends["be"].servers["dead"]
        assert dead_server.connect_errors >= 1
    assert bodies == [b"a"] * 4


async def test_idempotent_request_is_replayed_when_its_server_vanishes(
    two: tuple[HttpBackend, ...],
) -> None:
    a, b = two
    a.mode = "close"  # accepts, reads the request, closes without answering
    async with serving(config(servers(a, b))) as lb:
        bodies = [(await get(lb.port_of("fe"))).body for _ in range(4)]
    assert bodies == [b"b"] * 4


async def test_non_idempotent_request_is_not_replayed(two: tuple[HttpBackend, ...]) -> None:
    a, b = two
    a.mode = "close"
    async with serving(config(servers(a, b))) as lb:
        request = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx"
        responses = await exchange(lb.port_of("fe"), request)
    assert responses[0].status == 502
    assert b.requests == 0


async def test_cookie_stickiness_survives_other_servers_failing() -> None:
    backends = [await HttpBackend(n).start() for n in "abc"]
    try:
        cfg = config(servers(*backends), backend={"cookie": "HKSRV"})
        async with serving(cfg) as lb:
            port = lb.port_of("fe")
            first = await get(port)
            cookie = first.headers[b"set-cookie"].split(b";")[0].decode()
            home = first.body
            assert cookie == f"HKSRV={home.decode()}"
            for other in backends:
                if other.name.encode() != home:
                    await other.stop()
            again = [await get(port, headers=f"Cookie: x=1; {cookie}\r\n") for _ in range(5)]
    finally:
        for backend in backends:
            await backend.stop()
    assert [r.body for r in again] == [home] * 5
    assert all(b"set-cookie" not in r.headers for r in again)


async def test_drained_server_finishes_running_requests_but_takes_no_new_ones(
    two: tuple[HttpBackend, ...],
) -> None:
    a, b = two
    async with serving(config(servers(a, b))) as lb:
        port = lb.port_of("fe")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        a.mode = "hang"
        writer.write(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        await asyncio.sleep(0.2)
        backend = lb.backends["be"]
        backend.set_admin(backend.servers["a"], "drain")
        assert backend.servers["a"].active == 1
        fresh = [(await get(port)).body for _ in range(4)]
        for transport in list(a.conns):  # now answer the running request
            transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow")
        answer = await asyncio.wait_for(reader.readuntil(b"slow"), 5)
        writer.close()
    assert fresh == [b"b"] * 4
    assert answer.startswith(b"HTTP/1.1 200")


async def test_reload_keeps_open_connections_and_applies_new_servers(
    two: tuple[HttpBackend, ...],
) -> None:
    a, b = two
    cfg = config(servers(a))
    async with serving(cfg) as lb:
        port = lb.port_of("fe")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\na"), 5)
        frontend = cfg.frontend[0].model_copy(update={"bind": f"127.0.0.1:{port}"})
        new = config(servers(b)).model_copy(update={"frontend": (frontend,)})
        await lb.reload(new)
        assert lb.port_of("fe") == port
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        same_conn = await asyncio.wait_for(reader.readuntil(b"\r\n\r\nb"), 5)
        writer.close()
        fresh = await get(port)
    assert same_conn.startswith(b"HTTP/1.1 200")
    assert fresh.body == b"b"


async def test_killing_a_backend_under_load_costs_clients_nothing(
    two: tuple[HttpBackend, ...],
) -> None:
    a, b = two
    cfg = config(servers(a, b), backend={"check": {"type": "tcp", "inter": 0.2, "fall": 1}})
    async with serving(cfg) as lb:
        port = lb.port_of("fe")
        statuses: Counter[int] = Counter()
        async with asyncio.timeout(60):
            load = [asyncio.create_task(keep_alive_gets(port, 150, statuses)) for _ in range(8)]
            await asyncio.sleep(0.05)
            await a.stop()
            await asyncio.gather(*load)
    assert statuses == {200: 1200}
    assert b.requests > 600


async def test_balancer_object_reports_unknown_server_with_the_fix() -> None:
    lb = Balancer(config([{"name": "x", "address": "127.0.0.1:1"}]))
    with pytest.raises(Exception, match="hakeeper lb servers"):
        lb.server("be", "nope")


async def test_response_cut_half_way_closes_the_client_without_a_replay() -> None:
    served = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        await reader.readuntil(b"\r\n\r\n")
        served += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()
        writer.transport.abort()

    responses = await through_one_backend(handler, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert served == 1
    assert responses[0].status == 200
    assert not responses[0].done


async def test_connect_timeout_is_redispatched(two: tuple[HttpBackend, ...]) -> None:
    # A listener that never accepts, its backlog full: further SYNs go unanswered on
    # loopback, so a connect to it hangs until the connect timeout.
    stuck = socket.socket()
    stuck.bind(("127.0.0.1", 0))
    stuck.listen(0)
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(stuck.getsockname())
            fillers.append(filler)
        address = f"127.0.0.1:{stuck.getsockname()[1]}"
        cfg = config(
            [{"name": "stuck", "address": address}, *servers(two[0])],
            timeouts={"connect": 0.3},
        )
        async with serving(cfg) as lb:
            bodies = [(await get(lb.port_of("fe"))).body for _ in range(3)]
            assert lb.backends["be"].servers["stuck"].connect_errors >= 1
    finally:
        for filler in fillers:
            filler.close()
        stuck.close()
    assert bodies == [b"a"] * 3


async def test_client_half_closing_after_its_request_still_gets_the_response(
    two: tuple[HttpBackend, ...],
) -> None:
    async with serving(config(servers(two[0]))) as lb:
        reader, writer = await asyncio.open_connection("127.0.0.1", lb.port_of("fe"))
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        writer.write_eof()
        data = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    assert data.startswith(b"HTTP/1.1 200")
    assert data.endswith(b"a")


async def test_response_to_a_closing_request_arrives_before_the_close(
    two: tuple[HttpBackend, ...],
) -> None:
    async with serving(config(servers(two[0]))) as lb:
        reader, writer = await asyncio.open_connection("127.0.0.1", lb.port_of("fe"))
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    assert data.startswith(b"HTTP/1.1 200")
    assert data.endswith(b"a")
