"""Active checks against real sockets; transitions are counted on the backend's rules."""

from __future__ import annotations

from typing import Any

from hakeeper.balancer.config import BackendSpec, CheckSpec
from hakeeper.balancer.health import HealthChecker, http_check, judge_http, tcp_check
from hakeeper.balancer.servers import Backend
from hakeeper.lab.processes import free_port
from tests.balancer.backends import HttpBackend


def test_judge_http_wants_status_and_body() -> None:
    check = CheckSpec(type="http", expect_status=200, expect_body="ready")
    assert judge_http(b"HTTP/1.1 200 OK\r\n\r\nall ready", check) == (True, "status 200")
    assert judge_http(b"HTTP/1.1 503 X\r\n\r\nready", check)[0] is False
    assert judge_http(b"HTTP/1.1 200 OK\r\n\r\nstarting", check)[0] is False
    assert judge_http(b"garbage", check) == (False, "not an HTTP response")


async def test_tcp_check_tells_open_from_closed_ports() -> None:
    server = await HttpBackend("a").start()
    try:
        assert (await tcp_check("127.0.0.1", server.port, 2.0))[0]
    finally:
        await server.stop()
    ok, detail = await tcp_check("127.0.0.1", free_port(), 2.0)
    assert not ok
    assert "connect" in detail


async def test_http_check_sends_method_and_path() -> None:
    server = await HttpBackend("a").start()
    try:
        check = CheckSpec(type="http", method="HEAD", path="/healthz", expect_body=None)
        assert (await http_check("127.0.0.1", server.port, check))[0]
        assert server.seen[0][:2] == (b"HEAD", b"/healthz")
    finally:
        await server.stop()


async def test_http_check_times_out_on_a_silent_server() -> None:
    server = await HttpBackend("a").start()
    server.mode = "hang"
    try:
        ok, detail = await http_check("127.0.0.1", server.port, CheckSpec(type="http", timeout=0.2))
    finally:
        await server.stop()
    assert (ok, detail) == (False, "check timeout")


def checked_backend(server: HttpBackend, **check: Any) -> Backend:
    spec = {"name": "be", "servers": [{"name": "a", "address": server.address}], "check": check}
    return Backend(BackendSpec.model_validate(spec))


async def test_rounds_mark_down_after_fall_and_up_after_rise() -> None:
    server = await HttpBackend("a").start()
    try:
        backend = checked_backend(server, type="http", fall=2, rise=3, expect_status=200)
        clock = iter(range(1000))
        checker = HealthChecker(backend, lambda: float(next(clock)))
        a = backend.servers["a"]
        server.status_code = 500
        await checker.round()
        assert a.up
        await checker.round()
        assert not a.up
        assert backend.pick() is None
        server.status_code = 200
        await checker.round()
        await checker.round()
        assert not a.up
        await checker.round()
        assert a.up
        assert a.check_failures == 2
    finally:
        await server.stop()
