"""Durations, percentages and SLA periods as people write them."""

from __future__ import annotations

import pytest

from hakeeper.errors import ConfigError
from hakeeper.model.availability_units import (
    format_duration,
    format_percent,
    parse_availability,
    parse_period,
    parse_sla,
)
from hakeeper.model.durations import DAY, MONTH, YEAR


def test_a_period_written_as_a_bare_number_is_refused_because_its_unit_is_a_guess() -> None:
    with pytest.raises(ConfigError, match="number with a unit"):
        parse_period("30")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1314.9, "21 min 54 s"),
        (31557.6, "8 h 45 min 57 s"),
        (3.25, "3.2 s"),
        (0.004, "4 ms"),
        (60, "1 min"),
        (3600 + 5, "1 h 5 s"),
        (0, "0 s"),
    ],
)
def test_duration_is_shown_largest_unit_first(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("text", "value"),
    [("99.95%", 0.9995), ("99.95", 0.9995), ("0.9995", 0.9995), ("4 nines", 0.9999), ("3n", 0.999)],
)
def test_availability_is_read_from_percent_fraction_or_nines(text: str, value: float) -> None:
    assert parse_availability(text) == pytest.approx(value)


def test_availability_above_100_percent_is_refused() -> None:
    with pytest.raises(ConfigError, match="between 0 and 100"):
        parse_availability("101%")


def test_sla_without_period_is_yearly() -> None:
    assert parse_sla("99.9%") == (pytest.approx(0.999), YEAR, "year")


def test_sla_with_monthly_period() -> None:
    assert parse_sla("99.95% monthly") == (pytest.approx(0.9995), MONTH, "month")


def test_period_may_be_a_duration() -> None:
    assert parse_period("30d") == 30 * DAY


@pytest.mark.parametrize(
    ("value", "text"), [(0.9999, "99.99%"), (0.9995, "99.95%"), (0.5, "50%"), (1.0, "100%")]
)
def test_percent_shows_the_nines_without_rounding_up(value: float, text: str) -> None:
    assert format_percent(value) == text


def test_nearly_one_never_shows_as_100_percent() -> None:
    assert format_percent(1 - 1e-12) == ">99.999999%"
