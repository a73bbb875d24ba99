"""The balancers and session stores running on this node, on the daemon's ``/metrics``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web
from prometheus_client.core import Metric

from hakeeper.api.metrics import ClusterReading, render
from hakeeper.api.metrics_components import Component, local_components, scrape_components
from hakeeper.balancer.config import BackendSpec, ServerSpec
from hakeeper.balancer.metrics import render as balancer_page
from hakeeper.balancer.servers import Server
from hakeeper.lab.processes import free_port
from hakeeper.model.state import ClusterState, Instance, NodeState
from hakeeper.runtime.observations import Observations
from tests.api.metrics_support import Samples, samples, serving, three_node_spec
from tests.sessions.servers import start_store


def balancer_file(tmp_path: Path, api_bind: str) -> Path:
    path = tmp_path / "balancer.toml"
    path.write_text(
        '[[frontend]]\nname = "web"\nbind = "127.0.0.1:18080"\nbackend = "app"\n'
        '[[backend]]\nname = "app"\nservers = [{ name = "a", address = "127.0.0.1:9001" }]\n'
        f'[api]\nbind = "{api_bind}"\ntoken_hash = "sha256:{"0" * 64}"\n'
    )
    return path


def page_of(components: Sequence[Metric]) -> Samples:
    body, _ = render(ClusterReading("c1", "n1", up=False), Observations(), components)
    return samples(body.decode())


def test_only_the_components_running_on_this_node_are_asked(tmp_path: Path) -> None:
    config = balancer_file(tmp_path, "0.0.0.0:19900")
    spec = three_node_spec(
        f'[resources.lb]\nagent = "balancer"\nparams = {{ config = "{config}" }}\n'
        '[resources.store]\nagent = "sessions"\n'
        'params = { port = 11311, nodes = { n1 = "127.0.0.11", n2 = "127.0.0.12" } }\n'
    )
    state = ClusterState(
        nodes=(NodeState("n1"), NodeState("n2")),
        instances=(
            Instance("lb", "n1", "started"),
            Instance("store", "n2", "promoted"),
            Instance("store", "n1", "stopped"),
        ),
    )

    assert local_components(spec, state, "n1") == [Component("balancer", "lb", "127.0.0.1", 19900)]
    assert local_components(spec, state, "n2") == [
        Component("sessions", "store", "127.0.0.12", 11311)
    ]


async def test_a_balancer_page_joins_with_a_resource_label() -> None:
    backend = BackendSpec(name="app", servers=[ServerSpec(name="a", address="127.0.0.1:9001")])
    server = Server(backend.servers[0], "app")
    server.requests = 7

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=balancer_page(lambda: [server]), content_type="text/plain")

    async with serving("/metrics", metrics) as url:
        port = int(url.split(":")[2].split("/")[0])
        families = await scrape_components([Component("balancer", "lb", "127.0.0.1", port)])

    got = page_of(families)
    labels = (("backend", "app"), ("resource", "lb"), ("server", "a"))
    assert got[("hakeeper_balancer_requests_total", labels)] == 7
    assert got[("hakeeper_component_up", (("kind", "balancer"), ("resource", "lb")))] == 1


async def test_a_session_stores_stats_become_families(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    proc = await asyncio.to_thread(start_store, tmp_path, "store", address)
    try:
        host, _, port = address.rpartition(":")
        families = await scrape_components([Component("sessions", "store", host, int(port))])
    finally:
        proc.kill()

    got = page_of(families)
    store = (("resource", "store"),)
    assert got[("hakeeper_component_up", (("kind", "sessions"), *store))] == 1
    assert got[("hakeeper_sessions_current_items", store)] == 0
    assert got[("hakeeper_sessions_limit_bytes", store)] > 0
    assert got[("hakeeper_sessions_connections_total", store)] >= 1
    assert got[("hakeeper_sessions_primary", store)] == 0  # standalone


async def test_a_component_nothing_listens_for_is_down_not_an_error() -> None:
    families = await scrape_components([Component("sessions", "s", "127.0.0.1", free_port())])

    assert (
        page_of(families)[("hakeeper_component_up", (("kind", "sessions"), ("resource", "s")))] == 0
    )
