"""Backends that follow a clone's live instances in the coordination store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from hakeeper.balancer.clone_backends import CloneFollower, live_servers, require_promotable
from hakeeper.balancer.config import BackendSpec, BalancerConfig, ServerSpec, parse_config
from hakeeper.balancer.servers import Backend
from hakeeper.balancer.service import Balancer
from hakeeper.errors import ConfigError
from hakeeper.lab.cluster_secret import lab_secret_file
from hakeeper.lab.loopback import cluster_file
from hakeeper.model.cluster import Clone, ClusterSpec, Group
from hakeeper.model.records import InstanceStatus
from hakeeper.model.roles import RoleSelector
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.store import ClusterStore, LiveInstances
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


def clone_backend(role: RoleSelector | None = None) -> Backend:
    clone = {"resource": "web", "port": 8080, "cluster_config": "unused.toml", "role": role}
    return Backend(BackendSpec.model_validate({"name": "be", "clone": clone}))


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


PRIMARY_AND_REPLICAS = [status("n1", 0, "promoted"), status("n2", 1), status("n3", 2)]


def test_role_promoted_takes_only_the_primary() -> None:
    servers = live_servers(
        PRIMARY_AND_REPLICAS, {"n1", "n2", "n3"}, ADDRESSES, "web", 5432, "promoted"
    )
    assert [(s.name, s.address) for s in servers] == [("n1#0", "127.0.0.11:5432")]


def test_role_unpromoted_takes_only_the_running_replicas() -> None:
    statuses = [*PRIMARY_AND_REPLICAS, status("n3", 3, "failed")]
    servers = live_servers(statuses, {"n1", "n2", "n3"}, ADDRESSES, "web", 5432, "unpromoted")
    assert [s.name for s in servers] == ["n2#1", "n3#2"]


def test_without_a_role_every_running_instance_serves_as_before() -> None:
    servers = live_servers(PRIMARY_AND_REPLICAS, {"n1", "n2", "n3"}, ADDRESSES, "web", 5432)
    assert [s.name for s in servers] == ["n1#0", "n2#1", "n3#2"]


class CountingStore(ClusterStore):
    """A store over the fake coordinator that counts the follower's reads."""

    reads = 0

    async def live_instances(self) -> LiveInstances:
        self.reads += 1
        return await super().live_instances()


async def follow_a_failover(
    lose_primary: Callable[[LocalCoordinator, KeySpace], Awaitable[None]],
) -> None:
    """n1 is promoted; ``lose_primary`` takes it away; n2 is promoted. The backend's server
    sets, in order, are [n1], [], [n2]: never both, empty only between the loss and the
    promotion, each change one store read (a watch, no polling)."""
    coord = LocalCoordinator()
    keys = KeySpace("c1")
    store = CountingStore(coord, keys)
    backend = clone_backend("promoted")
    seen: list[tuple[str, ...]] = []
    reconfigure = backend.reconfigure

    def recording(spec: BackendSpec) -> None:
        seen.append(tuple(s.name for s in spec.servers))
        reconfigure(spec)

    backend.reconfigure = recording  # type: ignore[method-assign]
    for node in ("n1", "n2", "n3"):
        await coord.put(keys.member(node), b"{}")
    for s in PRIMARY_AND_REPLICAS:
        await store.report(s)
    task = asyncio.create_task(CloneFollower(store, ADDRESSES, backend).run())
    try:
        await until(lambda: set(backend.servers) == {"n1#0"})
        await lose_primary(coord, keys)
        await until(lambda: not backend.servers)
        await store.report(status("n2", 1, "promoted"))
        await until(lambda: set(backend.servers) == {"n2#1"})
    finally:
        task.cancel()
    assert seen == [("n1#0",), (), ("n2#1",)]
    assert store.reads == 3  # the first read, then one per change


async def test_a_dead_primary_node_leaves_the_backend_and_the_promoted_replica_joins() -> None:
    async def lease_expires(coord: LocalCoordinator, keys: KeySpace) -> None:
        await coord.delete(keys.member("n1"))  # its status still says promoted: stale

    await follow_a_failover(lease_expires)


async def test_a_failed_primary_leaves_the_backend_and_the_promoted_replica_joins() -> None:
    async def fails(coord: LocalCoordinator, keys: KeySpace) -> None:
        await ClusterStore(coord, keys).report(status("n1", 0, "failed"))

    await follow_a_failover(fails)


async def test_a_switchover_demotes_the_primary_before_the_replica_joins() -> None:
    async def demoted(coord: LocalCoordinator, keys: KeySpace) -> None:
        await ClusterStore(coord, keys).report(status("n1", 0, "started"))  # now a replica

    await follow_a_failover(demoted)


def test_a_role_needs_the_resource_of_a_promotable_clone() -> None:
    spec = ClusterSpec(
        groups=(Group("pg-group", ("pg", "pg-vip")),),
        clones=(Clone("db", "pg-group", promotable=True), Clone("webs", "web")),
    )
    require_promotable(spec, "pg-vip", "promoted")  # a member of the promotable group
    require_promotable(spec, "web", None)  # no role: any clone
    with pytest.raises(ConfigError, match=r"'web' is in none.*leave role out"):
        require_promotable(spec, "web", "promoted")


def role_config(cluster_file: Path, resource: str) -> BalancerConfig:
    clone = {"resource": resource, "port": 8080, "cluster_config": str(cluster_file)}
    data = {
        "frontend": [{"name": "f", "bind": "127.0.0.1:0", "backend": "be"}],
        "backend": [{"name": "be", "clone": {**clone, "role": "promoted"}}],
    }
    return parse_config(data, "t")


def two_clones(tmp_path: Path) -> Path:
    resources = """
[resources.state]
agent = "ocf:heartbeat:Stateful"

[clones.db]
resource = "state"
promotable = true

[resources.web]
agent = "ocf:heartbeat:Dummy"

[clones.webs]
resource = "web"
"""
    path = tmp_path / "cluster.toml"
    secret = lab_secret_file(tmp_path)
    path.write_text(cluster_file("c", 3, 7000, resources, secret_file=secret))
    return path


async def test_a_balancer_refuses_to_start_with_a_role_on_a_clone_that_is_not_promotable(
    tmp_path: Path,
) -> None:
    cluster = two_clones(tmp_path)
    with pytest.raises(ConfigError, match=r"'web' is in none"):
        await Balancer(role_config(cluster, "web"), listen=False, api=False).start()
    await Balancer(role_config(cluster, "state"), listen=False, api=False).start()


async def test_a_reload_to_a_role_on_a_clone_that_is_not_promotable_changes_nothing(
    tmp_path: Path,
) -> None:
    cluster = two_clones(tmp_path)
    lb = Balancer(role_config(cluster, "state"), listen=False, api=False)
    with pytest.raises(ConfigError, match=r"'web' is in none"):
        await lb.reload(role_config(cluster, "web"))
    clone = lb.backends["be"].spec.clone
    assert clone is not None
    assert clone.resource == "state"
