"""The observed-state snapshot: its JSON form round-trips and bad input names its key."""

from __future__ import annotations

import pytest

from hakeeper.errors import ConfigError
from hakeeper.model.records import Assignment, Placement
from hakeeper.model.state import (
    ClusterState,
    FailCount,
    Instance,
    NodeState,
    RuntimeConstraint,
    state_from_dict,
)

FULL = ClusterState(
    now=100.0,
    quorum=False,
    nodes=(NodeState("n1", "lost", fenced=True, attributes={"rack": "a"}), NodeState("n2")),
    instances=(Instance("web", "n2", "failed"), Instance("db", "n2", "failed", stop_failed=True)),
    failcounts=(FailCount("web", "n2", 2, 90.0),),
    promotion_scores={"pg": {"n2": 5}},
    constraints=(RuntimeConstraint("ban", "web", "n1"),),
)


def test_round_trip() -> None:
    assert state_from_dict(FULL.to_dict()) == FULL


def test_a_node_not_in_the_snapshot_is_offline() -> None:
    assert FULL.node("n7").status == "offline"


def test_lost_and_unfenced_is_unclean() -> None:
    assert NodeState("n1", "lost").unclean
    assert not NodeState("n1", "lost", fenced=True).unclean


def test_fail_count_expiry() -> None:
    fc = FailCount("web", "n1", 3, last_failure=100.0)
    assert fc.expired(60.0, now=160.0)
    assert not fc.expired(60.0, now=159.0)
    assert not fc.expired(0.0, now=1e9)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"nodes": {"n1": {"status": "gone"}}}, "nodes.n1.status: 'gone' is not one of"),
        ({"instances": [{"node": "n1"}]}, "instances[0].resource: required"),
        ({"instances": [{"resource": "w", "node": "n1", "role": "up"}]}, "instances[0].role"),
        ({"failcounts": [{"resource": "w", "node": "n1", "count": -1}]}, "failcounts[0].count"),
        ({"constraints": [{"kind": "pin", "resource": "w", "node": "n1"}]}, "constraints[0].kind"),
        (
            {"instances": [{"resource": "w", "node": "n1", "stop_failed": True}]},
            'instances[0].stop_failed: only a "failed" instance can have failed a stop',
        ),
        ({"colour": "red"}, "colour: unknown key"),
        ({"now": "noon"}, "now: 'noon' is not a number"),
        ({"assignments": [{"placements": []}]}, "assignments[0].resource: required"),
        (
            {"assignments": [{"resource": "w"}, {"resource": "w"}]},
            "assignments[1].resource: 'w' has an assignment already",
        ),
        (
            {"assignments": [{"resource": "w", "placements": [{"node": "n1", "role": "failed"}]}]},
            "assignments[0].placements[0].role: 'failed' is not one of started, promoted",
        ),
        (
            {"assignments": [{"resource": "w", "placements": [{"node": "n1", "instance": -1}]}]},
            "assignments[0].placements[0].instance: must be 0 or more",
        ),
        ({"assignments": [{"resource": "w", "epoch": 1.5}]}, "assignments[0].epoch"),
        ({"assignments": [{"resource": "w", "owner": "n1"}]}, "assignments[0].owner: unknown"),
    ],
)
def test_bad_input_names_the_key(doc: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=r"state\.json: ") as info:
        state_from_dict(doc, source="state.json")
    assert message in str(info.value)


WITH_ASSIGNMENTS = ClusterState(
    nodes=(NodeState("n1"), NodeState("n2")),
    assignments=(
        Assignment("db", (Placement("n1", "promoted"), Placement("n2", instance=1)), epoch=7),
        Assignment("web", ()),
    ),
)


def test_assignments_round_trip() -> None:
    assert state_from_dict(WITH_ASSIGNMENTS.to_dict()) == WITH_ASSIGNMENTS


def test_a_placement_defaults_to_started_instance_zero_and_epoch_zero() -> None:
    state = state_from_dict({"assignments": [{"resource": "web", "placements": [{"node": "n1"}]}]})
    assert state.assignment("web") == Assignment("web", (Placement("n1", "started", 0),), 0)
    assert state.assignment("db") is None
