"""The balancer's lifecycle: a stop ends serving before its background tasks wind down."""

from __future__ import annotations

import asyncio

import pytest

from hakeeper.balancer import service
from hakeeper.balancer.servers import Backend
from hakeeper.balancer.service import Balancer
from tests.balancer.conftest import config


async def test_a_stopping_balancer_closes_its_frontends_before_its_tasks_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A clone follower's engine client took seconds to close in the nemesis runs, and the
    # balancer kept relaying meanwhile.
    winding_down = asyncio.Event()
    ended = False

    async def slow_follower(backend: Backend) -> None:
        nonlocal ended
        try:
            await asyncio.Event().wait()
        finally:
            winding_down.set()
            await asyncio.sleep(1.0)
            ended = True

    monkeypatch.setattr(service, "follow_clone", slow_follower)
    clone = {"resource": "web", "port": 8080, "cluster_config": "/nonexistent/cluster.toml"}
    balancer = Balancer(config([], backend={"clone": clone}), checks=False)
    await balancer.start()
    port = balancer.port_of("fe")
    run = asyncio.create_task(balancer.run())
    try:
        await asyncio.sleep(0.1)
        balancer.stop()
        async with asyncio.timeout(10):
            await winding_down.wait()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        assert not ended
    finally:
        balancer.stop()
        async with asyncio.timeout(10):
            await run
    assert ended
