"""The scheduler's snapshot built from raw keys."""

from __future__ import annotations

import time

from hakeeper.cluster.keys import KeySpace
from hakeeper.cluster.store import ClusterStore, InstanceStatus
from hakeeper.config.loader import spec_from_text
from tests.fakes import LocalCoordinator

KEYS = KeySpace("c1")
SPEC = spec_from_text(
    '[cluster]\nname = "c1"\n[nodes.n1]\n[nodes.n2]\n[resources.db]\nagent = "process"\n'
    'params = { command = "sleep 1" }\n',
    "test",
)


async def store_with_status(node: str) -> ClusterStore:
    store = ClusterStore(LocalCoordinator(), KEYS)
    await store.report(InstanceStatus("db", node, 0, "started", 5, time.time()))
    return store


async def test_a_node_without_member_key_but_running_statuses_is_lost() -> None:
    store = await store_with_status("n1")
    observed = await store.observe(SPEC, time.time())
    assert observed.state.node("n1").status == "lost"
    assert observed.state.node("n2").status == "offline"


async def test_a_fenced_node_is_down_and_its_statuses_are_not_instances() -> None:
    store = await store_with_status("n1")
    await store.confirm_fenced("n1", by="operator", now=time.time())
    observed = await store.observe(SPEC, time.time())
    assert observed.state.node("n1").down
    assert observed.state.instances == ()


async def test_a_fenced_node_that_rejoined_is_not_believed_until_it_clears_its_mark() -> None:
    store = await store_with_status("n1")
    await store.confirm_fenced("n1", by="operator", now=time.time())
    lease = await store.coord.grant(3)
    await store.coord.put(KEYS.member("n1"), b"{}", lease)
    assert (await store.observe(SPEC, time.time())).state.instances == ()
    await store.rejoined("n1")
    assert len((await store.observe(SPEC, time.time())).state.instances) == 1


async def test_a_leaving_node_counts_as_standby() -> None:
    store = ClusterStore(LocalCoordinator(), KEYS)
    await store.leaving("n2")
    assert (await store.observe(SPEC, time.time())).state.node("n2").standby
