"""The nemesis's plan: deterministic from its seed, covering every kind, leaving recovery time."""

from __future__ import annotations

import itertools

import pytest

from hakeeper.errors import ConfigError
from hakeeper.lab.nemesis_history import FAULT_KINDS
from hakeeper.lab.nemesis_schedule import COMBINE_WITH, NODE_FAULTS, TIMINGS, kinds_in, plan


def test_the_same_seed_gives_the_same_plan() -> None:
    assert plan(7, 600, "fast") == plan(7, 600, "fast")


def test_another_seed_gives_another_plan() -> None:
    assert plan(7, 600, "fast") != plan(8, 600, "fast")


def test_a_long_run_plans_every_kind_and_combinations() -> None:
    planned = plan(1, 3600, "fast")

    assert kinds_in(planned) == set(FAULT_KINDS)
    assert any(len(f.parts) == 2 for f in planned)


def test_every_kind_comes_once_before_any_comes_twice() -> None:
    planned = plan(3, 3600, "fast")
    seen: list[str] = []
    for fault in planned[:10]:  # one deck: the nine kinds and one combination
        seen.append(fault.label if len(fault.parts) == 1 else "combined")

    assert len(set(seen)) == 10


def test_faults_never_overlap_and_fit_the_duration() -> None:
    for profile in TIMINGS:
        planned = plan(5, 900, profile)
        for before, after in itertools.pairwise(planned):
            assert after.at >= before.end - 1e-6
        assert planned[-1].end <= 900


def test_every_fault_leaves_the_profiles_recovery_gap() -> None:
    low = TIMINGS["fast"].gap[0]

    assert all(f.gap >= low for f in plan(9, 1800, "fast"))


def test_a_combination_takes_at_most_one_node_out() -> None:
    combos = [f for f in plan(2, 3600, "fast") if len(f.parts) == 2]

    assert combos
    for fault in combos:
        assert fault.parts[0].kind in NODE_FAULTS
        assert fault.parts[1].kind in COMBINE_WITH


def test_a_kind_the_lab_cannot_make_is_never_planned() -> None:
    kinds = tuple(k for k in FAULT_KINDS if k != "slow-disk")

    assert "slow-disk" not in kinds_in(plan(4, 3600, "fast", kinds=kinds))


def test_groups_number_the_faults_from_one() -> None:
    assert [f.group for f in plan(6, 300, "fast")] == list(range(1, len(plan(6, 300, "fast")) + 1))


def test_an_unknown_profile_or_kind_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match="fast"):
        plan(1, 60, "turbo")
    with pytest.raises(ConfigError, match="crash"):
        plan(1, 60, "fast", kinds=("meteor",))
