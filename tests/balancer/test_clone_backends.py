"""Backends that follow a clone's live instances in the coordination store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from hakeeper.balancer.clone_backends import CloneFollower, live_servers
from hakeeper.balancer.config import BackendSpec, ServerSpec, parse_config
from hakeeper.balancer.servers import Backend
from hakeeper.balancer.service import Balancer
from hakeeper.model.records import InstanceStatus
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.store import ClusterStore
from tests.fakes import LocalCoordinator

ADDRESSES = {"n1": "127.0.0.11", "n2": "127.0.0.12", "n3": "127.0.0.13"}


def status(
    node: str, instance: int, role: str = "started", resource: str = "web"
) -> InstanceStatus:
    return InstanceStatus(resource, node, instance, role, 1, time.time())  # type: ignore[arg-type]


def test_live_servers_are_started_instances_on_member_nodes() -> None:
    statuses = [
        status("n1", 0),
        status("n2", 1, "promoted"),
        status("n3", 2),  # n3 lost its member lease
        status("n1", 3, "stopped"),
        status("n2", 0, resource="db"),
    ]
    servers = live_servers(statuses, {"n1", "n2"}, ADDRESSES, "web", 8080)
    assert [(s.name, s.address) for s in servers] == [
        ("n1#0", "127.0.0.11:8080"),
        ("n2#1", "127.0.0.12:8080"),
    ]


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


def clone_backend() -> Backend:
    spec = {
        "name": "be",
        "clone": {"resource": "web", "port": 8080, "cluster_config": "unused.toml"},
    }
    return Backend(BackendSpec.model_validate(spec))


async def test_follower_tracks_instances_and_members() -> None:
    coord = LocalCoordinator()
    keys = KeySpace("c1")
    store = ClusterStore(coord, keys)
    backend = clone_backend()
    assert backend.pick() is None
    for node in ("n1", "n2"):
        await coord.put(keys.member(node), b"{}")
    await store.report(status("n1", 0))
    await store.report(status("n2", 1))
    follower = CloneFollower(store, ADDRESSES, backend)
    task = asyncio.create_task(follower.run())
    try:
        await until(lambda: set(backend.servers) == {"n1#0", "n2#1"})
        kept = backend.servers["n1#0"]
        kept.requests = 5
        await coord.delete(keys.member("n2"))  # n2's lease expired
        await until(lambda: set(backend.servers) == {"n1#0"})
        assert backend.servers["n1#0"] is kept  # state survives the change
        await store.report(status("n1", 0, "stopped"))
        await until(lambda: not backend.servers)
        assert backend.pick() is None
    finally:
        task.cancel()


async def test_reload_keeps_the_servers_a_clone_follower_found() -> None:
    data = {
        "frontend": [{"name": "f", "bind": "127.0.0.1:0", "backend": "be"}],
        "backend": [
            {
                "name": "be",
                "clone": {"resource": "web", "port": 8080, "cluster_config": "c.toml"},
                "check": {"type": "none"},
            }
        ],
    }
    lb = Balancer(parse_config(data, "t"), listen=False, api=False)
    backend = lb.backends["be"]
    found = (ServerSpec(name="n1#0", address="127.0.0.11:8080"),)
    backend.reconfigure(backend.spec.model_copy(update={"servers": found}))
    kept = backend.servers["n1#0"]
    await lb.reload(parse_config(data, "t"))
    assert backend.servers["n1#0"] is kept


def test_a_node_with_an_ipv6_address_serves_at_that_address_in_brackets() -> None:
    servers = live_servers([status("n1", 0)], {"n1"}, {"n1": "fd00::11"}, "web", 8080)
    assert [(s.address, s.host_port) for s in servers] == [("[fd00::11]:8080", ("fd00::11", 8080))]
