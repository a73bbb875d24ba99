"""Hostile clients and servers against a real running balancer on 127.0.0.1.

Each test attacks, then asserts (1) the attack failed (refused, cut, nothing changed), (2) the
balancer still runs (its frontend answers), (3) a normal operation afterwards succeeds (a
request relayed and, for the API, a change made with the token).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from hakeeper.balancer.api_token import token_digest
from hakeeper.balancer.config import BalancerConfig
from hakeeper.balancer.service import Balancer, serving
from tests.balancer.backends import HttpBackend, ScriptedBackend
from tests.balancer.conftest import RESET, SLOW_HEAD, config, get, send_slowly, until

TOKEN = "security-test-token-0123456789abcdefghijklm"
JSON = "application/json"


@dataclass
class Target:
    lb: Balancer
    api: int
    good: HttpBackend


def guarded(servers: list[dict[str, object]], **extra: object) -> BalancerConfig:
    api = {"bind": "127.0.0.1:0", "token_hash": token_digest(TOKEN)}
    return config(servers, api=api, **extra)  # type: ignore[arg-type]


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    good = await HttpBackend("good").start()
    try:
        async with serving(guarded([{"name": "good", "address": good.address}])) as lb:
            assert lb.api_port is not None
            yield Target(lb, lb.api_port, good)
    finally:
        await good.stop()


async def api_call(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> tuple[int, bytes]:
    """One raw request to the API (every header as given, nothing added but the framing)."""
    fields = {"Host": f"127.0.0.1:{port}", **(headers or {})}
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    if "Transfer-Encoding" not in fields:
        head += f"Content-Length: {len(body)}\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode() + b"Connection: close\r\n\r\n" + body)
        try:
            answer = await asyncio.wait_for(reader.read(), 10)
        except ConnectionResetError:
            answer = b""
    finally:
        writer.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    return status, answer.partition(b"\r\n\r\n")[2]


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": JSON}


DRAIN = b'{"action": "drain"}'


async def still_serves(t: Target, server: str = "good") -> None:
    """The balancer answers a client, and an authorized change works."""
    assert (await get(t.lb.port_of("fe"))).status == 200
    path = f"/v1/servers/be/{server}"
    status, _ = await api_call(t.api, "POST", path, bearer(), b'{"action": "weight", "weight": 2}')
    assert status == 200
    assert t.lb.backends["be"].servers[server].weight == 2


def unchanged(t: Target) -> None:
    server = t.lb.backends["be"].servers["good"]
    assert (server.admin, server.weight) == ("ready", 1)


# -- the runtime API ---------------------------------------------------------------------


async def test_api_change_without_a_token_is_refused(target: Target) -> None:
    status, body = await api_call(
        target.api, "POST", "/v1/servers/be/good", {"Content-Type": JSON}, DRAIN
    )
    assert status == 401
    assert b"Bearer" in body
    unchanged(target)
    await still_serves(target)


async def test_api_change_with_a_wrong_token_is_refused(target: Target) -> None:
    wrong = bearer("not-the-token-0123456789abcdefghijklmnopq")
    status, _ = await api_call(target.api, "POST", "/v1/servers/be/good", wrong, DRAIN)
    assert status == 401
    status, _ = await api_call(target.api, "POST", "/v1/reload", wrong, b"{}")
    assert status == 401
    unchanged(target)
    await still_serves(target)


async def test_api_change_from_a_foreign_origin_is_refused(target: Target) -> None:
    # Even with the token: a browser page on another origin must never reach a change.
    for origin in ("http://evil.example", "null", f"https://127.0.0.1:{target.api}"):
        headers = {**bearer(), "Origin": origin}
        status, _ = await api_call(target.api, "POST", "/v1/servers/be/good", headers, DRAIN)
        assert status == 403, origin
    unchanged(target)
    await still_serves(target)


async def test_api_with_a_foreign_host_is_refused(target: Target) -> None:
    # DNS rebinding: evil.example resolved to 127.0.0.1 carries its own name in Host.
    rebound = {**bearer(), "Host": f"evil.example:{target.api}"}
    status, _ = await api_call(target.api, "POST", "/v1/servers/be/good", rebound, DRAIN)
    assert status == 403
    status, _ = await api_call(target.api, "GET", "/v1/servers", {"Host": "evil.example"})
    assert status == 403
    status, _ = await api_call(target.api, "GET", "/metrics", {"Host": "127.0.0.1:1"})
    assert status == 403  # right name, wrong port
    unchanged(target)
    await still_serves(target)


async def test_api_change_without_json_content_type_is_refused(target: Target) -> None:
    # What an HTML form or a "simple" cross-site fetch can send without a preflight.
    for content_type in ("application/x-www-form-urlencoded", "text/plain", None):
        headers = {"Authorization": f"Bearer {TOKEN}"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        body = b"action=drain" if content_type and "form" in content_type else DRAIN
        status, _ = await api_call(target.api, "POST", "/v1/servers/be/good", headers, body)
        assert status == 415, content_type
    unchanged(target)
    await still_serves(target)


async def test_api_oversized_body_is_refused(target: Target) -> None:
    huge = b'{"action": "drain", "pad": "' + b"x" * 1_000_000 + b'"}'
    status, _ = await api_call(target.api, "POST", "/v1/servers/be/good", bearer(), huge)
    assert status in (413, 0)  # 413, or reset while our body was still being sent
    chunked = {**bearer(), "Transfer-Encoding": "chunked"}
    pieces = b"".join(
        b"%x\r\n%s\r\n" % (len(c), c)
        for c in [huge[i : i + 65536] for i in range(0, len(huge), 65536)]
    )
    status, _ = await api_call(
        target.api, "POST", "/v1/servers/be/good", chunked, pieces + b"0\r\n\r\n"
    )
    assert status in (413, 0)
    unchanged(target)
    await still_serves(target)


async def test_api_without_a_token_hash_takes_no_change_at_all() -> None:
    good = await HttpBackend("good").start()
    try:
        cfg = config([{"name": "good", "address": good.address}], api={"bind": "127.0.0.1:0"})
        async with serving(cfg) as lb:
            assert lb.api_port is not None
            status, body = await api_call(
                lb.api_port, "POST", "/v1/servers/be/good", bearer(), DRAIN
            )
            assert status == 403
            assert b"hakeeper lb token" in body
            assert lb.backends["be"].servers["good"].admin == "ready"
            status, _ = await api_call(lb.api_port, "GET", "/v1/servers")
            assert status == 200  # reads on loopback need no token
            assert (await get(lb.port_of("fe"))).status == 200
    finally:
        await good.stop()


# -- slowloris ---------------------------------------------------------------------------


@pytest.fixture
async def good() -> AsyncIterator[HttpBackend]:
    backend = await HttpBackend("good").start()
    try:
        yield backend
    finally:
        await backend.stop()


async def test_slowloris_200_connections_do_not_stop_a_normal_client(good: HttpBackend) -> None:
    cfg = guarded(
        [{"name": "good", "address": good.address}],
        frontend={"maxconn": 250},
        timeouts={"client_header": 2.0},
    )
    async with serving(cfg) as lb:
        port = lb.port_of("fe")
        async with asyncio.timeout(60):
            slow = [asyncio.create_task(send_slowly(port, SLOW_HEAD, 0.25)) for _ in range(200)]
            try:
                await until(lambda: lb.frontends["fe"].served == 200)  # all in, a byte or so each
                started = asyncio.get_running_loop().time()
                assert (await get(port)).status == 200
                assert asyncio.get_running_loop().time() - started < 2
                results = await asyncio.gather(*slow)
            finally:
                for task in slow:
                    task.cancel()
        for answer, took in results:
            assert answer.startswith(b"HTTP/1.1 408") or answer == RESET
            assert 1.5 < took < 8  # cut at client_header (2 s), not before, not much after
        await until(lambda: not lb.frontends["fe"].conns)  # every one of them is gone
        assert good.requests == 1  # none of the 200 reached the server
        await still_serves(Target(lb, lb.api_port or 0, good))


async def test_slowloris_filling_maxconn_holds_a_normal_client_only_until_the_cut(
    good: HttpBackend,
) -> None:
    cfg = guarded(
        [{"name": "good", "address": good.address}],
        frontend={"maxconn": 50},
        timeouts={"client_header": 1.0, "queue": 5.0},
    )
    async with serving(cfg) as lb, asyncio.timeout(60):
        port = lb.port_of("fe")
        slow = [asyncio.create_task(send_slowly(port, SLOW_HEAD, 0.25)) for _ in range(50)]
        try:
            await until(lambda: lb.frontends["fe"].served == 50)
            started = asyncio.get_running_loop().time()
            response = await get(port)  # queued behind the 50, served once they are cut
            waited = asyncio.get_running_loop().time() - started
            results = await asyncio.gather(*slow)
        finally:
            for task in slow:
                task.cancel()
        assert response.status == 200
        assert 0.3 < waited < 5  # it did wait for a slot, and not for the queue timeout
        assert all(a.startswith(b"HTTP/1.1 408") or a == RESET for a, _ in results)
        await still_serves(Target(lb, lb.api_port or 0, good))


async def test_a_flood_of_silent_connections_is_bounded_then_cut(good: HttpBackend) -> None:
    cfg = guarded(
        [{"name": "good", "address": good.address}],
        frontend={"maxconn": 20, "maxqueue": 20},
        timeouts={"client_header": 1.0, "queue": 5.0},
    )
    async with serving(cfg) as lb, asyncio.timeout(60):
        port = lb.port_of("fe")
        rt = lb.frontends["fe"]
        loop = asyncio.get_running_loop()
        started = loop.time()
        flood = [await asyncio.open_connection("127.0.0.1", port) for _ in range(100)]
        try:
            await until(lambda: rt.refused_total == 60)  # the 41st and later, at once
            assert rt.served <= 20
            # The 20 served are cut at client_header, the 20 waiting get their slots and
            # are cut in turn: then the frontend is free again.
            await until(lambda: rt.served == 0 and not rt.waiting)
            cleared = loop.time() - started
            response = await get(port)
        finally:
            for _, writer in flood:
                writer.close()
        assert response.status == 200
        assert cleared < 8
        refused = [await asyncio.wait_for(r.read(), 10) for r, _ in flood[40:]]
        assert all(answer.startswith(b"HTTP/1.1 503") for answer in refused)
        await still_serves(Target(lb, lb.api_port or 0, good))


# -- hostile backends --------------------------------------------------------------------


async def endless_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\n")
    for i in range(10_000):  # 10 MB and 10 s at most if nothing stops it
        writer.write(b"X-%d: %s\r\n" % (i, b"z" * 1000))
        await writer.drain()
        await asyncio.sleep(0.001)


async def test_a_backend_sending_an_endless_response_head_gets_cut() -> None:
    bad = await ScriptedBackend(endless_head).start()
    good = await HttpBackend("good").start()
    servers = [{"name": "bad", "address": bad.address}, {"name": "good", "address": good.address}]
    try:
        async with serving(guarded(servers)) as lb:
            response = await get(lb.port_of("fe"))  # round-robin: the bad one first
            assert response.status == 502
            t = Target(lb, lb.api_port or 0, good)
            status, _ = await api_call(t.api, "POST", "/v1/servers/be/bad", bearer(), DRAIN)
            assert status == 200
            await still_serves(t)
    finally:
        await bad.stop()
        await good.stop()


async def test_a_backend_that_never_answers_gets_a_504() -> None:
    mute = await HttpBackend("mute").start()
    mute.mode = "hang"
    good = await HttpBackend("good").start()
    servers = [{"name": "mute", "address": mute.address}, {"name": "good", "address": good.address}]
    try:
        async with serving(guarded(servers, timeouts={"response": 1.0})) as lb:
            started = asyncio.get_running_loop().time()
            response = await get(lb.port_of("fe"))
            assert response.status == 504
            assert asyncio.get_running_loop().time() - started < 5
            await until(lambda: not mute.conns)  # the upstream connection was closed
            t = Target(lb, lb.api_port or 0, good)
            status, _ = await api_call(t.api, "POST", "/v1/servers/be/mute", bearer(), DRAIN)
            assert status == 200
            await still_serves(t)
    finally:
        await mute.stop()
        await good.stop()
