"""Run-time target roles from the CLI replace the file's, for primitives, groups and clones."""

from __future__ import annotations

from hakeeper.model.cluster import Clone, ClusterSpec, Group, NodeSpec, Primitive
from hakeeper.model.state import ClusterState, Instance, NodeState
from hakeeper.policy.scheduler import schedule
from hakeeper.runtime.overrides import apply_overrides

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
    assert apply_overrides(SPEC, {}) is SPEC


def test_each_kind_gets_its_target_role_replaced() -> None:
    spec = apply_overrides(SPEC, {"vip": "stopped", "reports": "stopped", "web-clone": "stopped"})
    assert spec.primitive("vip") is not None
    assert spec.primitive("vip").meta.target_role == "stopped"  # type: ignore[union-attr]
    assert spec.groups[0].target_role == "stopped"
    assert spec.clones[0].target_role == "stopped"
    # Everything else is untouched, and the input is not modified (frozen model).
    assert spec.primitive("fs") == SPEC.primitive("fs")
    assert SPEC.groups[0].target_role == "started"


def test_unknown_names_are_ignored() -> None:
    assert apply_overrides(SPEC, {"nope": "stopped"}) == SPEC


def test_the_scheduler_stops_an_overridden_resource() -> None:
    state = ClusterState(
        nodes=(NodeState("n1"), NodeState("n2")), instances=(Instance("vip", "n1"),)
    )
    assert "stop vip on n1" not in schedule(SPEC, state).lines()
    stopped = schedule(apply_overrides(SPEC, {"vip": "stopped"}), state)
    assert "stop vip on n1" in stopped.lines()
