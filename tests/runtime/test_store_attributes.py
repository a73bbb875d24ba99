"""Node attributes in the cluster store: the snapshot's promotion scores and node attributes."""

from __future__ import annotations

import time

from hakeeper.config.loader import spec_from_text
from hakeeper.model.attributes import NodeAttribute
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.store import ClusterStore
from tests.fakes import LocalCoordinator

KEYS = KeySpace("c1")
SPEC = spec_from_text(
    '[cluster]\nname = "c1"\n[nodes.n1]\n[nodes.n2]\n[resources.pg]\nagent = "process"\n'
    'params = { command = "sleep 1" }\n[clones.db]\nresource = "pg"\npromotable = true\n',
    "test",
)


async def joined(store: ClusterStore, coord: LocalCoordinator, *nodes: str) -> None:
    for node in nodes:
        await coord.put(KEYS.member(node), b"{}")


async def test_promotion_scores_and_public_attributes_reach_the_snapshot() -> None:
    coord = LocalCoordinator()
    store = ClusterStore(coord, KEYS)
    await joined(store, coord, "n1", "n2")
    await store.set_attribute(NodeAttribute("n1", "master-pg", "1001", "forever"))
    await store.set_attribute(NodeAttribute("n2", "master-pg", "990"))
    await store.set_attribute(NodeAttribute("n2", "lsn_location-pg", "0/3000", private=True))
    await store.set_attribute(NodeAttribute("n2", "rack", "b"))
    observed = await store.observe(SPEC, time.time())
    assert observed.state.promotion_scores == {"pg": {"n1": 1001, "n2": 990}}
    assert observed.state.node("n2").attributes == {"master-pg": "990", "rack": "b"}
    assert "lsn_location-pg" in {a.name for a in observed.attributes}


async def test_a_lost_node_s_transient_score_no_longer_counts_but_a_permanent_one_does() -> None:
    coord = LocalCoordinator()
    store = ClusterStore(coord, KEYS)
    await joined(store, coord, "n1")
    await store.set_attribute(NodeAttribute("n2", "master-pg", "5", "reboot"))
    await store.set_attribute(NodeAttribute("n2", "rack", "b", "forever"))
    observed = await store.observe(SPEC, time.time())
    assert observed.state.promotion_scores == {}
    assert observed.state.node("n2").attributes == {"rack": "b"}


async def test_a_starting_node_clears_only_its_own_transient_attributes() -> None:
    coord = LocalCoordinator()
    store = ClusterStore(coord, KEYS)
    await joined(store, coord, "n1", "n2")
    await store.set_attribute(NodeAttribute("n1", "master-pg", "5", "reboot"))
    await store.set_attribute(NodeAttribute("n1", "keep", "1", "forever"))
    await store.set_attribute(NodeAttribute("n2", "master-pg", "6", "reboot"))
    assert await store.clear_transient_attributes("n1") == 1
    left = {(a.node, a.name) for a in (await store.live_attributes()).attributes}
    assert left == {("n1", "keep"), ("n2", "master-pg")}


async def test_a_foreign_attribute_value_is_skipped_not_fatal() -> None:
    coord = LocalCoordinator()
    store = ClusterStore(coord, KEYS)
    await joined(store, coord, "n1")
    await coord.put(KEYS.attribute("n1", "reboot", "master-pg"), b"not json")
    await coord.put(KEYS.attribute("n1", "sometimes", "x"), b'{"value": "1", "private": false}')
    observed = await store.observe(SPEC, time.time())
    assert observed.attributes == ()
