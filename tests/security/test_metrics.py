"""Hostile scrapers and hostile data against ``/metrics`` served on 127.0.0.1.

Each test attacks, then asserts (1) the attack failed (nothing flooded, nothing injected,
nothing broken), (2) the endpoint still answers, (3) a normal scrape afterwards shows the
cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import ClientSession

from hakeeper.api.metrics import MetricsEndpoint
from hakeeper.runtime.observations import Observations
from hakeeper.runtime.store import ClusterStore
from tests.api.metrics_support import (
    CLIENT_TIMEOUT,
    KEYS,
    Samples,
    fetch,
    samples,
    serving,
    three_node_spec,
)
from tests.fakes import LocalCoordinator

FLOOD = 300


class CountingStore(ClusterStore):
    """Counts the reads a scrape starts (each begins with the quorum question)."""

    reads = 0

    async def has_quorum(self) -> bool:
        self.reads += 1
        await asyncio.sleep(0.05)  # a read through the consensus log takes a while
        return await super().has_quorum()


@dataclass
class Target:
    coord: LocalCoordinator
    store: CountingStore
    observations: Observations
    url: str


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    coord = LocalCoordinator()
    store = CountingStore(coord, KEYS)
    observations = Observations()
    endpoint = MetricsEndpoint(store, three_node_spec, "n1", observations)
    async with serving("/metrics", endpoint.handler()) as url:
        yield Target(coord, store, observations, url)


async def normal_scrape(url: str) -> Samples:
    status, _, body = await fetch(url)
    assert status == 200
    return samples(body)


async def test_a_scrape_flood_does_not_become_a_flood_of_engine_reads(target: Target) -> None:
    async with ClientSession(timeout=CLIENT_TIMEOUT) as session:

        async def scrape() -> int:
            async with session.get(target.url) as response:
                await response.read()
                return response.status

        statuses = await asyncio.wait_for(
            asyncio.gather(*(scrape() for _ in range(FLOOD))), timeout=120
        )

    assert set(statuses) == {200}
    assert target.store.reads <= 3, f"{FLOOD} scrapes made {target.store.reads} engine reads"
    await asyncio.sleep(1.0)  # past the read interval
    assert (await normal_scrape(target.url))[("hakeeper_quorate", ())] == 1


async def test_label_values_cannot_inject_series(target: Target) -> None:
    hostile = 'n9"} 1\nhakeeper_up 0\nx{a="'
    target.observations.fence_finished(hostile, True, 1.0)
    target.observations.failover_finished("web\\\n", 2.0)

    page = await normal_scrape(target.url)

    fences = [labels for name, labels in page if name == "hakeeper_fence_operations_total"]
    assert fences == [(("node", hostile), ("result", "success"))]
    assert page[("hakeeper_failovers_total", (("resource", "web\\\n"),))] == 1
    assert page[("hakeeper_up", ())] == 1
    assert not any(name == "x" for name, _ in page)


@pytest.mark.parametrize(
    "junk",
    [b"\xff\xfe not utf-8", b"{not json", b'{"kind":"node.exploded","ts":1}', b"[]"],
    ids=["bytes", "json", "kind", "shape"],
)
async def test_a_damaged_event_leaves_the_page_standing(target: Target, junk: bytes) -> None:
    await target.coord.put(f"{KEYS.events}0000000000000001-x-0", junk)

    page = await normal_scrape(target.url)

    assert page[("hakeeper_up", ())] == 1
    assert page[("hakeeper_quorate", ())] == 1
    assert page[("hakeeper_nodes", (("state", "offline"),))] == 3
