"""`assignment_after`: what the controller writes once an action is done, and the simulation
applies (retraction and pruning decisions are covered by tests/policy/scenarios)."""

from __future__ import annotations

import pytest

from hakeeper.model.records import Assignment, Placement
from hakeeper.model.transition import Action, ActionKind
from hakeeper.policy.assignments import assignment_after

DB = Assignment("db", (Placement("n1", "promoted"), Placement("n2")), epoch=9)


def test_a_start_adds_a_placement_sorted_by_node() -> None:
    after = assignment_after(Assignment("db", (Placement("n2"),)), Action("start", "n1", "db"))
    assert after == Assignment("db", (Placement("n1"), Placement("n2")))


def test_the_first_assignment_of_a_resource_starts_from_nothing() -> None:
    after = assignment_after(None, Action("start", "n1", "web", 1))
    assert after == Assignment("web", (Placement("n1", "started", 1),))


def test_a_restart_keeps_the_primary_role() -> None:
    assert assignment_after(DB, Action("start", "n1", "db")).placements[0].role == "promoted"


def test_promote_and_demote_change_the_role_in_place() -> None:
    promoted = assignment_after(DB, Action("promote", "n2", "db"))
    assert promoted.placements == (Placement("n1", "promoted"), Placement("n2", "promoted"))
    demoted = assignment_after(DB, Action("demote", "n1", "db"))
    assert demoted.placements == (Placement("n1"), Placement("n2"))


@pytest.mark.parametrize("kind", ["stop", "retract", "prune"])
def test_stop_retract_and_prune_remove_the_placement(kind: ActionKind) -> None:
    assert assignment_after(DB, Action(kind, "n1", "db")).placements == (Placement("n2"),)


def test_only_the_named_instance_is_touched() -> None:
    two = Assignment("web", (Placement("n1"), Placement("n1", "started", 1)))
    after = assignment_after(two, Action("stop", "n1", "web", 1))
    assert after.placements == (Placement("n1"),)
