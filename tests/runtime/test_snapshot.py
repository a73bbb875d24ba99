"""The snapshot every reader schedules from: run-time target roles from the CLI replace the
file's, for primitives, groups and clones."""

from __future__ import annotations

from hakeeper.model.cluster import Clone, ClusterSpec, Group, NodeSpec, Primitive
from hakeeper.model.records import InstanceStatus
from hakeeper.model.state import ClusterState, Instance, NodeState
from hakeeper.policy.scheduler import schedule
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.snapshot import observe_cluster, with_target_roles
from hakeeper.runtime.store import ClusterStore
from tests.fakes import LocalCoordinator

SPEC = ClusterSpec(
    nodes=(NodeSpec("n1"), NodeSpec("n2")),
    primitives=(
        Primitive("vip", "vip"),
        Primitive("fs", "process"),
        Primitive("job", "process"),
        Primitive("web", "process"),
    ),
    groups=(Group("reports", ("fs", "job")),),
    clones=(Clone("web-clone", "web"),),
)


def test_no_overrides_is_the_same_spec() -> None:
    assert with_target_roles(SPEC, {}) is SPEC


def test_each_kind_gets_its_target_role_replaced() -> None:
    spec = with_target_roles(SPEC, {"vip": "stopped", "reports": "stopped", "web-clone": "stopped"})
    assert spec.primitive("vip") is not None
    assert spec.primitive("vip").meta.target_role == "stopped"  # type: ignore[union-attr]
    assert spec.groups[0].target_role == "stopped"
    assert spec.clones[0].target_role == "stopped"
    # Everything else is untouched, and the input is not modified (frozen model).
    assert spec.primitive("fs") == SPEC.primitive("fs")
    assert SPEC.groups[0].target_role == "started"


def test_unknown_names_are_ignored() -> None:
    assert with_target_roles(SPEC, {"nope": "stopped"}) == SPEC


def test_the_scheduler_stops_an_overridden_resource() -> None:
    state = ClusterState(
        nodes=(NodeState("n1"), NodeState("n2")), instances=(Instance("vip", "n1"),)
    )
    assert "stop vip on n1" not in schedule(SPEC, state).lines()
    stopped = schedule(with_target_roles(SPEC, {"vip": "stopped"}), state)
    assert "stop vip on n1" in stopped.lines()


async def test_observe_cluster_folds_a_stored_target_role_into_the_spec() -> None:
    store = ClusterStore(LocalCoordinator(), KeySpace("c1"))
    await store.set_target_role("reports", "stopped")
    snapshot = await observe_cluster(store, SPEC, 0.0)
    assert snapshot.observed.target_roles == {"reports": "stopped"}
    assert snapshot.spec.groups[0].target_role == "stopped"
    assert snapshot.spec.primitive("vip") == SPEC.primitive("vip")


async def test_the_snapshot_transition_does_not_start_a_resource_stopped_from_the_cli() -> None:
    coord, keys = LocalCoordinator(), KeySpace("c1")
    for node in ("n1", "n2"):
        await coord.put(keys.member(node), b"{}")
    store = ClusterStore(coord, keys)
    starts = {a.resource for a in (await observe_cluster(store, SPEC, 0.0)).transition().actions}
    assert "vip" in starts
    await store.set_target_role("vip", "stopped")
    snapshot = await observe_cluster(store, SPEC, 0.0)
    assert "vip" not in {a.resource for a in snapshot.transition().actions}


async def test_an_instance_that_failed_in_a_stop_is_observed_as_a_failed_stop() -> None:
    store = ClusterStore(LocalCoordinator(), KeySpace("c1"))
    await store.report(InstanceStatus("vip", "n1", 0, "failed", 3, 1.0, "stop", 1, "busy"))
    await store.report(InstanceStatus("web", "n1", 0, "failed", 3, 1.0, "monitor", 7, ""))
    state = (await observe_cluster(store, SPEC, 0.0)).observed.state
    assert {(i.resource, i.stop_failed) for i in state.instances} == {
        ("vip", True),
        ("web", False),
    }
