"""Hostile scrapers and hostile data against ``/metrics`` served on 127.0.0.1.

Each test attacks, then asserts (1) the attack failed (nothing flooded, nothing injected,
nothing broken), (2) the endpoint still answers, (3) a normal scrape afterwards shows the
cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import ClientSession, web

from hakeeper.api.metrics import MIN_READ_INTERVAL, ClusterReading, MetricsEndpoint, render
from hakeeper.api.metrics_components import (
    COMPONENT_TIMEOUT,
    MAX_COMPONENT_BYTES,
    Component,
    ComponentKind,
    scrape_components,
)
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
from tests.fakes import LocalCoordinator, VirtualClock

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
    clock: VirtualClock
    url: str


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    coord = LocalCoordinator()
    store = CountingStore(coord, KEYS)
    observations = Observations()
    clock = VirtualClock()
    endpoint = MetricsEndpoint(store, three_node_spec, "n1", observations, clock=clock)
    async with serving("/metrics", endpoint.handler()) as url:
        yield Target(coord, store, observations, clock, url)


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
    assert target.store.reads == 1, f"{FLOOD} scrapes made {target.store.reads} engine reads"
    target.clock.advance(MIN_READ_INTERVAL)
    assert (await normal_scrape(target.url))[("hakeeper_quorate", ())] == 1
    assert target.store.reads == 2


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


# --- hostile components: a local balancer or store that hangs or babbles ---------------------


@contextlib.asynccontextmanager
async def tcp_server(answer: bytes | None) -> AsyncIterator[int]:
    """A listener on 127.0.0.1 that sends ``answer`` forever (None: reads and says nothing)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            for _ in range(100_000):  # bounded: ~the babble a scrape could ever be offered
                if answer is None:
                    await reader.read(1024)
                    await asyncio.sleep(0.1)
                else:
                    writer.write(answer)
                    await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def good_balancer_page() -> web.Response:
    return web.Response(
        text="# TYPE hakeeper_balancer_server_up gauge\nhakeeper_balancer_server_up 1\n"
    )


@pytest.mark.parametrize(
    ("kind", "answer"),
    [
        ("sessions", None),  # accepts, never answers
        ("sessions", b"STAT curr_items 1\r\n" * 1000),  # a stats answer that never ends
        ("balancer", b"x" * 65536),  # neither HTTP nor ever done
    ],
    ids=["silent-store", "endless-stats", "babbling-balancer"],
)
async def test_a_hostile_component_costs_a_bounded_time_and_not_the_page(
    kind: ComponentKind, answer: bytes | None
) -> None:

    async def page(_: web.Request) -> web.Response:
        return good_balancer_page()

    async with tcp_server(answer) as port, serving("/metrics", page) as url:
        good_port = int(url.split(":")[2].split("/")[0])
        started = time.monotonic()
        families = await asyncio.wait_for(
            scrape_components([
                Component(kind, "bad", "127.0.0.1", port),
                Component("balancer", "good", "127.0.0.1", good_port),
            ]),
            timeout=60,
        )  # fmt: skip
        took = time.monotonic() - started

    body, _ = render(ClusterReading("c1", "n1", up=True), Observations(), families)
    got = samples(body.decode())
    assert got[("hakeeper_component_up", (("kind", kind), ("resource", "bad")))] == 0
    assert took < COMPONENT_TIMEOUT + 5
    assert got[("hakeeper_component_up", (("kind", "balancer"), ("resource", "good")))] == 1
    assert got[("hakeeper_balancer_server_up", (("resource", "good"),))] == 1


async def test_an_oversized_balancer_page_is_refused_whole() -> None:
    huge = "hakeeper_balancer_server_up 1\n" * (MAX_COMPONENT_BYTES // 20)

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=huge)

    async with serving("/metrics", page) as url:
        port = int(url.split(":")[2].split("/")[0])
        families = await scrape_components([Component("balancer", "big", "127.0.0.1", port)])
        body, _ = render(ClusterReading("c1", "n1", up=True), Observations(), families)

    got = samples(body.decode())
    assert got[("hakeeper_component_up", (("kind", "balancer"), ("resource", "big")))] == 0
    assert not any(name == "hakeeper_balancer_server_up" for name, _ in got)
