"""`plan --what-if "node N added"` and `"node N removed"`: what a membership change moves."""

from __future__ import annotations

from hakeeper.config import parse, to_spec
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.state import ClusterState, Instance, NodeState
from hakeeper.policy.scheduler import schedule
from hakeeper.policy.simulate import spec_if, what_if

CONFIG = parse(
    {
        "nodes": {"n1": {}, "n2": {}, "n3": {}},
        "resources": {"db": {"agent": "process"}, "web": {"agent": "process"}},
        "clones": {"web-clone": {"resource": "web"}},
    }
)


def spec() -> ClusterSpec:
    return to_spec(CONFIG)


def running() -> ClusterState:
    web = tuple(Instance("web", n) for n in ("n1", "n2", "n3"))
    return ClusterState(
        nodes=tuple(NodeState(n) for n in ("n1", "n2", "n3")),
        instances=(Instance("db", "n2"), *web),
    )


def test_a_node_added_gets_a_clone_instance_and_nothing_else_moves() -> None:
    question = "node n4 added"
    grown = spec_if(spec(), question)
    names = tuple(n.name for n in grown.nodes)
    tr = schedule(grown, what_if(running(), question, names))
    assert [line for line in tr.lines() if not line.startswith("monitor")] == ["start web on n4"]


def test_a_node_removed_moves_what_it_runs_and_only_that() -> None:
    tr = schedule(spec(), what_if(running(), "node n2 removed", ("n1", "n2", "n3")))
    moves = [line for line in tr.lines() if not line.startswith("monitor")]
    assert "stop db on n2" in moves
    assert "stop web on n2" in moves
    assert any(line.startswith("start db on") for line in moves)
    assert not any("n1" in line and "web" in line for line in moves)


def test_a_node_the_file_already_names_is_added_by_coming_online() -> None:
    state = ClusterState(nodes=(NodeState("n1"), NodeState("n4", "offline")))
    assert what_if(state, "node n4 added").node("n4").status == "online"
    assert spec_if(spec(), "node n1 added") == spec()
