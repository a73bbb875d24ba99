"""``/metrics`` of a real three-node loopback cluster moves with a failover.

n1 and n2 run their daemons in this process (so their `Observations` can be served by a tiny
aiohttp app here, as the daemon's API server will); they are a majority of the Raft group, so
one of them is controller before n3 starts. n3 is a real agent process that the singleton
prefers. A power cut of n3 makes the controller (n1 or n2) fence it through the lab's fence
device and start the singleton elsewhere: the fence and the failover appear as counters and
histograms, and the cluster families show n3 fenced.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from hakeeper.agents.registry import BUILTIN_AGENTS
from hakeeper.api.metrics import MetricsEndpoint
from hakeeper.errors import HakeeperError
from hakeeper.lab.loopback import LoopbackCluster
from hakeeper.runtime.daemon import NodeDaemon
from hakeeper.runtime.observations import Observations
from hakeeper.runtime.observed import Observed
from tests.api.metrics_support import Samples, fetch, samples, serving

pytestmark = pytest.mark.slow

IN_PROCESS = ("n1", "n2")
RESOURCES = """
[resources.singleton]
agent = "process"
params = { command = "sleep 3600" }
ops.monitor = { interval = "1s", timeout = "5s" }

[[constraints.location]]
resource = "singleton"
node = "n3"
score = 100
"""
STOP_TIMEOUT = 60.0


async def until(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise HakeeperError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def daemons_in_process(lab: LoopbackCluster) -> AsyncIterator[dict[str, NodeDaemon]]:
    config = lab.config_path.read_text()
    running = {
        n: NodeDaemon(lab.spec, n, lab.state_dir(n), config, agents=BUILTIN_AGENTS)
        for n in IN_PROCESS
    }
    tasks = [asyncio.create_task(d.run(), name=f"daemon-{n}") for n, d in running.items()]
    try:
        yield running
    finally:
        for d in running.values():
            d.request_stop()
        # A graceful stop stops the daemon's resources; a stop that hangs (no quorum left
        # for the hand-over) is bounded, then cancelled.
        _, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[LoopbackCluster]:
    cluster = LoopbackCluster(tmp_path, RESOURCES, fence_device=True)
    try:
        yield cluster
    finally:
        await cluster.close()


def total(daemons: dict[str, NodeDaemon], read: Callable[[Observations], int]) -> int:
    """Counters are per process: the cluster's total is their sum over the nodes."""
    return sum(read(d.observations) for d in daemons.values())


async def test_a_failover_moves_the_fence_and_failover_counters(lab: LoopbackCluster) -> None:
    async with daemons_in_process(lab) as daemons:
        await lab.start(["n3"])
        store = await lab.store()
        await lab.wait_for(
            "the singleton on n3", lambda o: o.running_on("singleton") == ["n3"], timeout=120
        )
        current = await store.controller()
        assert current is not None
        assert current.node in IN_PROCESS, "n1 and n2 are a majority: one of them leads"
        controller = current.node
        endpoint = MetricsEndpoint(
            store, lambda: lab.spec, controller, daemons[controller].observations
        )

        async with serving("/metrics", endpoint.handler()) as url:
            before = samples((await fetch(url))[2])
            lab.crash("n3")

            def moved(o: Observed) -> bool:
                return o.running_on("singleton") in ([n] for n in IN_PROCESS)

            await lab.wait_for("the singleton to fail over", moved, timeout=120)
            await until(
                "the failover to be counted",
                lambda: total(daemons, lambda o: sum(o.failovers.values())) == 1,
            )
            # Seconds after the first scrape: past the endpoint's read interval, a fresh read.
            after = samples((await fetch(url))[2])

    assert_before(before, controller)
    assert_after(after, controller)
    assert total(daemons, lambda o: o.fences.get(("n3", "success"), 0)) == 1
    assert all(d.observations.lease_renewal.count > 0 for d in daemons.values())


def value(page: Samples, name: str, **labels: str) -> float:
    return page.get((name, tuple(sorted(labels.items()))), 0.0)


def assert_before(page: Samples, controller: str) -> None:
    assert value(page, "hakeeper_quorate") == 1
    assert value(page, "hakeeper_controller", node=controller) == 1
    assert value(page, "hakeeper_is_controller") == 1
    assert value(page, "hakeeper_nodes", state="online") == 3
    assert (
        value(page, "hakeeper_resource_instances", resource="singleton", node="n3", role="started")
        == 1
    )
    assert value(page, "hakeeper_failovers_total", resource="singleton") == 0


def assert_after(page: Samples, controller: str) -> None:
    assert value(page, "hakeeper_failovers_total", resource="singleton") == 1
    assert value(page, "hakeeper_failover_duration_seconds_count") == 1
    assert value(page, "hakeeper_failover_duration_seconds_sum") > 0
    assert value(page, "hakeeper_fence_operations_total", node="n3", result="success") == 1
    assert value(page, "hakeeper_nodes", state="fenced") == 1
    assert value(page, "hakeeper_nodes", state="online") == 2
    assert value(page, "hakeeper_scheduler_run_duration_seconds_count") > 0
    assert value(page, "hakeeper_controller", node=controller) == 1
