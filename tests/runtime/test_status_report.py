"""The status read-model below the faces: a report any face can render or serve."""

from __future__ import annotations

from hakeeper.config.loader import spec_from_text
from hakeeper.errors import NoQuorum
from hakeeper.model.attributes import NodeAttribute
from hakeeper.model.records import InstanceStatus
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.status_report import collect_status
from hakeeper.runtime.store import ClusterStore
from tests.fakes import LocalCoordinator

SPEC = spec_from_text(
    '[cluster]\nname = "c1"\nfencing = false\n[nodes.n1]\n[nodes.n2]\n[resources.db]\n'
    'agent = "process"\nparams = { command = "sleep 1" }\n',
    "test",
)


async def test_without_quorum_the_report_reads_nothing_and_exits_2() -> None:
    coord = LocalCoordinator()
    coord.fail_with = NoQuorum("no majority")
    report = await collect_status(ClusterStore(coord, KeySpace("c1")), SPEC, 0.0)
    assert report.to_dict()["quorum"] is False
    assert report.nodes == ()
    assert report.exit_code == 2


async def test_the_report_places_a_resource_the_controller_would_start() -> None:
    coord = LocalCoordinator()
    for node in ("n1", "n2"):
        await coord.put(KeySpace("c1").member(node), b"{}")
    report = await collect_status(ClusterStore(coord, KeySpace("c1")), SPEC, 0.0)
    document = report.to_dict()
    assert [n["state"] for n in document["nodes"]] == ["online", "online"]
    (db,) = document["resources"]
    assert db["pending"][0].startswith("start db on")
    assert document["exit_code"] == 0


async def test_the_report_shows_promotion_scores_and_public_node_attributes() -> None:
    keys = KeySpace("c1")
    coord = LocalCoordinator()
    store = ClusterStore(coord, keys)
    for node in ("n1", "n2"):
        await coord.put(keys.member(node), b"{}")
    await store.report(InstanceStatus("db", "n2", 0, "started", 1, 1.0))
    await store.set_attribute(NodeAttribute("n2", "master-db", "990"))
    await store.set_attribute(NodeAttribute("n2", "lsn_location-db", "1#5", private=True))
    document = (await collect_status(store, SPEC, 0.0)).to_dict()
    (db,) = document["resources"]
    assert db["promotion_scores"] == {"n2": 990}
    assert db["running"] == ["n2 started (promotion score 990)"]
    assert document["nodes"][1]["attributes"] == {"master-db": "990"}
