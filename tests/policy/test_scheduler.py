"""The scheduler's contract beyond the scenarios: layering, inputs, probes, what-ifs."""

from __future__ import annotations

from pathlib import Path

import pytest

from hakeeper.config import parse, to_spec
from hakeeper.errors import ConfigError
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.state import ClusterState, Instance, NodeState
from hakeeper.policy.scheduler import schedule
from hakeeper.policy.simulate import apply, what_if

SRC = Path(__file__).parents[2] / "src" / "hakeeper" / "cluster"
CONFIG = parse(
    {
        "nodes": {"n1": {}, "n2": {}},
        "cluster": {"no_quorum_policy": "ignore"},
        "resources": {"web": {"agent": "process"}},
    }
)


def two_nodes_one_lost() -> ClusterState:
    return ClusterState(
        now=100.0,
        nodes=(NodeState("n1", "lost"), NodeState("n2")),
        instances=(Instance("web", "n1"),),
    )


def spec() -> ClusterSpec:
    return to_spec(CONFIG)


def test_schedule_takes_the_validated_file_or_the_plain_spec() -> None:
    assert schedule(CONFIG, two_nodes_one_lost()) == schedule(spec(), two_nodes_one_lost())


def test_a_lost_node_is_fenced_before_its_resource_starts_elsewhere() -> None:
    tr = schedule(spec(), two_nodes_one_lost())
    assert tr.lines() == ["fence n1", "start web on n2"]
    assert tr.comes_before("fence n1", "start web on n2")


def test_applying_a_fence_marks_the_node_fenced_and_drops_its_instances() -> None:
    after = apply(two_nodes_one_lost(), schedule(spec(), two_nodes_one_lost()))
    assert after.node("n1").fenced
    assert after.instances == (Instance("web", "n2"),)


def test_a_probe_is_flagged_as_one() -> None:
    state = ClusterState(
        nodes=(NodeState("n1"), NodeState("n2")), instances=(Instance("web", "n1", "unknown"),)
    )
    (action,) = schedule(spec(), state).actions
    assert action.kind == "monitor"
    assert action.probe


def test_what_if_a_resource_fails_counts_the_failure() -> None:
    state = ClusterState(
        now=5.0, nodes=(NodeState("n1"), NodeState("n2")), instances=(Instance("web", "n2"),)
    )
    after = what_if(state, "resource web fails on n2")
    assert after.instances == (Instance("web", "n2", "failed"),)
    assert [(f.count, f.last_failure) for f in after.failcounts] == [(1, 5.0)]


def test_what_if_wait_moves_the_clock() -> None:
    assert what_if(ClusterState(now=10.0), "wait 2m").now == 130.0


def test_what_if_refuses_an_unknown_question() -> None:
    with pytest.raises(ConfigError, match="not understood"):
        what_if(ClusterState(), "reboot everything")
