"""What a frontend's connections share: maxconn slots, the queue, the retry budget."""

from __future__ import annotations

import logging

import pytest

from hakeeper.balancer.runtime import FrontendRuntime
from hakeeper.balancer.servers import Backend
from tests.balancer.conftest import config, fake_runtime


class Conn:
    """A connection as the runtime sees it: a deadline, expiry, admission."""

    def __init__(self) -> None:
        self.deadline = 0.0
        self.admitted = False

    def expire(self) -> None: ...

    def admit(self) -> None:
        self.admitted = True


def full_frontend() -> tuple[FrontendRuntime, Conn, Conn]:
    """A frontend with maxconn 1: one connection served, one waiting."""
    rt = fake_runtime(config([{"name": "a", "address": "127.0.0.1:1"}], frontend={"maxconn": 1}))
    served, waiting = Conn(), Conn()
    rt.served = 1
    rt.conns.update((served, waiting))
    assert rt.hold(waiting)
    return rt, served, waiting


def test_a_served_connection_leaving_hands_its_slot_to_the_waiting_one() -> None:
    rt, served, waiting = full_frontend()
    rt.leave(served, slot=True, queued=False)
    assert waiting.admitted
    assert served not in rt.conns
    assert rt.served == 1


def test_a_waiting_connection_leaving_gives_up_its_place() -> None:
    rt, _, waiting = full_frontend()
    rt.leave(waiting, slot=False, queued=True)
    assert not rt.waiting
    assert waiting not in rt.conns
    assert rt.served == 1


def test_retries_are_spent_after_one_try_more_than_retries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rt = fake_runtime(
        config(
            [{"name": "a", "address": "127.0.0.1:1"}, {"name": "b", "address": "127.0.0.1:2"}],
            backend={"retries": 1},
        )
    )
    a, b = rt.backend.servers["a"], rt.backend.servers["b"]
    assert not rt.retries_spent(a, [a], "connection refused")
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="hakeeper.balancer"):
        assert rt.retries_spent(b, [a, b], "connection refused")
    assert "server=b reason=connection_refused retries=exhausted" in caplog.text


def test_a_new_backend_brings_its_stickiness_cookie() -> None:
    rt = fake_runtime(config([{"name": "a", "address": "127.0.0.1:1"}]))
    assert rt.cookie is None
    sticky = config([{"name": "a", "address": "127.0.0.1:1"}], backend={"cookie": "srv"})
    rt.backend = Backend(sticky.backend[0])
    assert rt.cookie == "srv"
