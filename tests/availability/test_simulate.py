"""The Monte Carlo model agrees with the closed forms where both apply, and is reproducible.

Trial counts are modest so the whole file runs in seconds; node MTBF/MTTR are chosen so that
downtime is large enough to be measured precisely in few trials. The agreement check allows
the 95 % interval plus a small margin (3 %), because a 95 % interval misses the truth one
time in twenty by design and the seeds are fixed, not cherry-picked.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from hakeeper.availability import calc
from hakeeper.availability.simulate import (
    ClusterModel,
    Empirical,
    Exponential,
    Fixed,
    Summary,
    parse_distribution,
    run_trial,
    simulate,
    what_if,
)
from hakeeper.errors import ConfigError
from hakeeper.model.durations import HOUR, YEAR

MTBF, MTTR = 100 * HOUR, 10 * HOUR
A = calc.availability(MTBF, MTTR)


def assert_agrees(summary: Summary, availability: float, margin: float = 0.03) -> None:
    expected = (1 - availability) * summary.horizon
    low, high = summary.ci95
    shown = f"{low / HOUR:.2f}..{high / HOUR:.2f} h"
    assert low * (1 - margin) <= expected <= high * (1 + margin), (
        f"closed form {expected / HOUR:.2f} h outside simulated {shown}"
    )


def model(nodes: int, **changes: Any) -> ClusterModel:
    return replace(ClusterModel(nodes, Exponential(MTBF), Exponential(MTTR)), **changes)


def test_exclusive_on_two_nodes_without_quorum_matches_parallel() -> None:
    result = simulate(model(2, voters=0), trials=300, seed=1)
    assert_agrees(result.exclusive, calc.parallel([A, A]))


def test_clone_needing_both_of_two_nodes_matches_series() -> None:
    result = simulate(model(2, voters=0, clone_required=2), trials=300, seed=2)
    assert_agrees(result.clone, calc.series([A, A]))


def test_clone_two_of_three_matches_k_of_n() -> None:
    result = simulate(model(3, clone_required=2), trials=300, seed=3)
    assert_agrees(result.clone, calc.k_of_n_identical(2, 3, A))


def test_quorum_of_three_makes_the_exclusive_resource_two_of_three() -> None:
    result = simulate(model(3), trials=300, seed=4)
    assert_agrees(result.exclusive, calc.k_of_n_identical(2, 3, A))


def test_failover_time_matches_the_closed_form_penalty() -> None:
    # Rare failures, long switch-over: downtime is almost all failover time.
    node = calc.component(1000 * HOUR, 10 * HOUR)
    expected = calc.parallel_of([node, node], failover=2 * HOUR).availability
    sim = ClusterModel(2, Exponential(1000 * HOUR), Exponential(10 * HOUR), Fixed(2 * HOUR))
    result = simulate(replace(sim, voters=0), trials=400, seed=5)
    # The closed form charges λ·t_f even when the standby is down, so it may sit a little
    # above the simulation (conservative): allow 6 %.
    assert_agrees(result.exclusive, expected, margin=0.06)


def test_fencing_time_is_added_to_each_failover() -> None:
    without = simulate(model(2, voters=0, failover=Fixed(HOUR)), trials=100, seed=6)
    with_fence = simulate(
        model(2, voters=0, failover=Fixed(HOUR), fencing=Fixed(HOUR)), trials=100, seed=6
    )
    assert with_fence.exclusive.mean > without.exclusive.mean


def test_same_seed_gives_the_same_answer() -> None:
    first = simulate(model(3), trials=50, seed=7)
    again = simulate(model(3), trials=50, seed=7)
    assert first.exclusive.samples == again.exclusive.samples


def test_one_node_cluster_is_down_exactly_while_its_node_is() -> None:
    trial = run_trial(model(1, node_down=Exponential(MTTR)), random.Random(8))
    assert trial.exclusive == pytest.approx(trial.clone)


def test_quorum_loss_is_counted() -> None:
    result = simulate(model(3), trials=50, seed=9)
    assert result.quorum_losses > 0


def test_what_if_one_more_node_buys_downtime_for_the_clone() -> None:
    (_, base), (_, more), (_, _faster) = what_if(model(3, failover=Fixed(60)), trials=100)
    assert more.clone.mean < base.clone.mean


def test_what_if_faster_failover_buys_downtime_for_the_exclusive_resource() -> None:
    (_, base), _, (_, faster) = what_if(model(3, failover=Fixed(HOUR)), trials=100)
    assert faster.exclusive.mean < base.exclusive.mean


def test_percentiles_are_ordered_and_bracket_the_median() -> None:
    summary = simulate(model(3), trials=200, seed=10).service
    p5, p50, p95 = (summary.percentile(p) for p in (5, 50, 95))
    assert p5 <= p50 <= p95


def test_percentile_interpolates_between_samples() -> None:
    assert Summary("x", (0.0, 10.0), YEAR).percentile(50) == 5.0


def test_meets_target_is_the_share_of_trials_within_budget() -> None:
    budget = 0.001 * YEAR
    summary = Summary("x", (budget / 2, budget * 2), YEAR, target=0.999)
    assert summary.meets_target == 0.5


def test_empirical_distribution_only_returns_measured_values() -> None:
    rng = random.Random(11)
    assert {Empirical((1.0, 2.0)).sample(rng) for _ in range(50)} == {1.0, 2.0}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2000h", Exponential(2000 * HOUR)), ("exp:1h", Exponential(HOUR)), ("fixed:30s", Fixed(30))],
)
def test_distribution_is_read_from_text(text: str, expected: object) -> None:
    assert parse_distribution(text) == expected


def test_unknown_distribution_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown distribution 'gamma'"):
        parse_distribution("gamma:1h")


def test_more_voters_than_nodes_is_refused() -> None:
    with pytest.raises(ConfigError, match="voters"):
        simulate(model(3, voters=5), trials=10)
