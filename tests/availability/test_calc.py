"""The closed forms, each against a case computed by hand, and their ordering properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hakeeper.availability import calc
from hakeeper.errors import ConfigError
from hakeeper.model.durations import HOUR, MINUTE, MONTH, YEAR


def test_single_component_availability() -> None:
    # 2000 h / (2000 h + 0.5 h) = 0.99975006...
    assert calc.availability(2000 * HOUR, 30 * MINUTE) == pytest.approx(2000 / 2000.5)


def test_nines_of_three_nines() -> None:
    assert calc.nines(0.999) == pytest.approx(3.0)


def test_nines_of_perfect_availability_is_infinite() -> None:
    assert calc.nines(1.0) == math.inf


def test_downtime_per_year_at_99_9_percent() -> None:
    # 0.001 × 365.25 d = 8.766 h
    assert calc.downtime_per_period(0.999)["year"] == pytest.approx(8.766 * HOUR)


def test_sla_budget_of_99_95_monthly_is_21_min_54_s() -> None:
    # 0.0005 × 30.4375 d × 86400 s = 1314.9 s = 21 min 54.9 s
    assert calc.sla_budget(0.9995, MONTH) == pytest.approx(1314.9)


def test_series_multiplies() -> None:
    assert calc.series([0.99, 0.98]) == pytest.approx(0.9702)


def test_parallel_multiplies_unavailabilities() -> None:
    # 1 − 0.01 × 0.02
    assert calc.parallel([0.99, 0.98]) == pytest.approx(0.9998)


def test_two_of_three_identical() -> None:
    # 3·0.9²·0.1 + 0.9³ = 0.243 + 0.729
    assert calc.k_of_n_identical(2, 3, 0.9) == pytest.approx(0.972)


def test_k_of_n_dp_matches_hand_computed_mixed_members() -> None:
    # 2 of {0.9, 0.8, 0.7}: all up 0.504 + exactly two 0.9·0.8·0.3 + 0.9·0.2·0.7 + 0.1·0.8·0.7
    assert calc.k_of_n(2, [0.9, 0.8, 0.7]) == pytest.approx(0.504 + 0.216 + 0.126 + 0.056)


def test_k_of_n_dp_matches_binomial_for_identical_members() -> None:
    assert calc.k_of_n(3, [0.95] * 5) == pytest.approx(calc.k_of_n_identical(3, 5, 0.95))


def test_k_larger_than_n_is_refused() -> None:
    with pytest.raises(ConfigError, match="1 ≤ k ≤ n"):
        calc.k_of_n_identical(4, 3, 0.9)


def test_component_equivalent_mtbf_and_mttr_are_its_own() -> None:
    node = calc.component(100 * HOUR, 2 * HOUR)
    assert (node.mtbf, node.mttr) == (pytest.approx(100 * HOUR), pytest.approx(2 * HOUR))


def test_series_failure_rate_is_the_sum_of_rates() -> None:
    # Two components with MTBF 100 h and 300 h fail at 1/100 + 1/300 per hour while up.
    group = calc.series_of(
        [calc.component(100 * HOUR, 1 * HOUR), calc.component(300 * HOUR, 1 * HOUR)]
    )
    assert group.failure_rate == pytest.approx(1 / (100 * HOUR) + 1 / (300 * HOUR))


def test_parallel_pair_mttr_is_half_the_member_mttr() -> None:
    # Both down ends at the first of two exponential repairs: mean MTTR/2.
    node = calc.component(1000 * HOUR, 10 * HOUR)
    assert calc.parallel_of([node, node]).mttr == pytest.approx(5 * HOUR)


def test_failover_adds_rate_times_switch_time() -> None:
    # U = (10/1010)² + (1/1000 h)·(1 h) = 9.8030e-5 + 1e-3
    node = calc.component(1000 * HOUR, 10 * HOUR)
    pair = calc.parallel_of([node, node], failover=1 * HOUR)
    assert pair.unavailability == pytest.approx((10 / 1010) ** 2 + 1 / 1000)


def test_failover_in_k_of_n_charges_each_active_member() -> None:
    node = calc.component(1000 * HOUR, 10 * HOUR)
    group = calc.group(2, [node] * 3, failover=1 * HOUR)
    expected = 1 - calc.k_of_n_identical(2, 3, 1000 / 1010) + 2 / 1000
    assert group.unavailability == pytest.approx(expected)


def test_failover_needs_an_mtbf() -> None:
    with pytest.raises(ConfigError, match="MTBF of the active"):
        calc.group(1, [calc.Figures(0.99), calc.Figures(0.99)], failover=5.0)


def test_failover_is_free_without_a_spare() -> None:
    node = calc.component(1000 * HOUR, 10 * HOUR)
    assert calc.group(1, [node], failover=HOUR).availability == pytest.approx(node.availability)


def test_mttr_needed_for_four_nines_at_2000_h_mtbf() -> None:
    # 2000 h × 0.0001 / 0.9999 = 0.20002 h ≈ 12 min
    assert calc.mttr_for_target(2000 * HOUR, 0.9999) == pytest.approx(2000 * HOUR * 1e-4 / 0.9999)


def test_mtbf_needed_for_three_nines_at_1_h_mttr() -> None:
    assert calc.mtbf_for_target(HOUR, 0.999) == pytest.approx(999 * HOUR)


def test_smallest_parallel_n_for_four_nines_with_two_nines_members() -> None:
    # 1 − 0.01² = 0.9999 exactly: two members are enough.
    member = calc.Figures(0.99)
    assert calc.smallest_n(1, member, 0.9999 - 1e-12) == 2


def test_smallest_n_is_none_when_failover_alone_exceeds_the_budget() -> None:
    # λ·t_f = 1/100 h × 1 h = 1 %, far above the 0.01 % budget of four nines.
    member = calc.component(100 * HOUR, 1 * HOUR)
    assert calc.smallest_n(1, member, 0.9999, failover=HOUR) is None


def test_failover_for_target_leaves_exactly_the_budget() -> None:
    member = calc.component(1000 * HOUR, 10 * HOUR)
    longest = calc.failover_for_target(1, 2, member, 0.999)
    assert longest is not None
    assert calc.parallel_of([member, member], longest).availability == pytest.approx(0.999)


def test_downtime_per_year_of_one_nine_more() -> None:
    assert calc.downtime(0.9999, YEAR) == pytest.approx(calc.downtime(0.999, YEAR) / 10)


avails = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
members = st.lists(avails, min_size=1, max_size=6)


@given(members)
def test_parallel_is_at_least_the_best_member(values: list[float]) -> None:
    assert calc.parallel(values) >= max(values) - 1e-12


@given(members)
def test_series_is_at_most_the_worst_member(values: list[float]) -> None:
    assert calc.series(values) <= min(values) + 1e-12


@given(members, st.data())
def test_k_of_n_lies_between_series_and_parallel(values: list[float], data: st.DataObject) -> None:
    k = data.draw(st.integers(min_value=1, max_value=len(values)))
    result = calc.k_of_n(k, values)
    assert calc.series(values) - 1e-12 <= result <= calc.parallel(values) + 1e-12


@given(members)
def test_one_of_n_is_parallel_and_n_of_n_is_series(values: list[float]) -> None:
    assert calc.k_of_n(1, values) == pytest.approx(calc.parallel(values), abs=1e-12)
    assert calc.k_of_n(len(values), values) == pytest.approx(calc.series(values), abs=1e-12)


@given(st.floats(min_value=0.5, max_value=0.9999), st.integers(min_value=1, max_value=6))
def test_adding_a_spare_never_lowers_k_of_n(a: float, n: int) -> None:
    assert calc.k_of_n_identical(1, n + 1, a) >= calc.k_of_n_identical(1, n, a) - 1e-12


@given(
    st.floats(min_value=1.0, max_value=1e5),
    st.floats(min_value=0.01, max_value=100.0),
    st.integers(min_value=1, max_value=4),
)
def test_group_frequency_equals_up_to_down_transitions_for_k_of_n(
    mtbf: float, mttr: float, n: int
) -> None:
    # For one identical group the frequency of "k-th failure" is k·C(n,k)·A^k·U^(n−k)·λ ...
    # checked here in its simplest form: parallel of n, f = n·λ·A·U^(n−1).
    node = calc.component(mtbf, mttr)
    a, u = node.availability, node.unavailability
    expected = n * (1 / mtbf) * a * u ** (n - 1)
    assert calc.parallel_of([node] * n).frequency == pytest.approx(expected, rel=1e-9)
