"""The Transition: action lines, dependency queries and the Graphviz form."""

from __future__ import annotations

from hakeeper.model.transition import Action, Decision, Transition

TR = Transition(
    actions=(
        Action("fence", "n1"),
        Action("stop", "n2", "web"),
        Action("start", "n3", "web", instance=1),
    ),
    edges=((0, 2), (1, 2)),
    decisions=(Decision("blocked", "db stays", "db", "n1"),),
)


def test_action_lines() -> None:
    assert TR.lines() == ["fence n1", "stop web on n2", "start web#1 on n3"]


def test_comes_before_follows_paths() -> None:
    assert TR.comes_before("fence n1", "start web#1 on n3")
    assert not TR.comes_before("start web#1 on n3", "fence n1")


def test_needs_lists_direct_dependencies() -> None:
    assert TR.needs(2) == [0, 1]


def test_dot_has_a_node_per_action_an_edge_per_dependency_and_the_blocked() -> None:
    dot = TR.to_dot("c")
    assert dot.count("[label=") == 4
    assert dot.count(" -> ") == 2
    assert "blocked: db stays" in dot


def test_blocked_decisions() -> None:
    assert [d.resource for d in TR.blocked()] == ["db"]
