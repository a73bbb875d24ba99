"""The one duration grammar: every form the cluster file, OCF agents and the availability
tools accept, with one meaning, and refusals that name the value and the fix."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hakeeper.errors import ConfigError
from hakeeper.model.durations import DAY, HOUR, MINUTE, MONTH, YEAR, parse_duration

# -- the forms the cluster file accepted -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"), [("5s", 5.0), ("500ms", 0.5), ("2m", 120.0), ("1h", 3600.0), (3, 3.0)]
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


# -- the forms OCF agents advertise -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("20s", 20.0), ("500ms", 0.5), ("2m", 120.0), ("1h", 3600.0), ("15", 15.0), ("PT1M5S", 65.0)],
)
def test_agent_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_bad_duration_names_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"stop_timeout.*not a duration"):
        parse_duration("soon", what="stop_timeout")


@pytest.mark.parametrize(
    ("text", "seconds"), [("250usec", 0.00025), ("3msec", 0.003), ("2hr", 7200)]
)
def test_the_long_spellings_of_units_agents_use(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_units_are_read_in_any_letter_case() -> None:
    assert parse_duration("20S") == 20.0


# -- the forms the availability tools accepted ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2000h", 2000 * HOUR),
        ("30m", 30 * MINUTE),
        ("30min", 30 * MINUTE),
        ("1h30m", 90 * MINUTE),
        ("1.5d", 36 * HOUR),
        ("250ms", 0.25),
        ("1y", 365.25 * DAY),
        ("1mo", 365.25 / 12 * DAY),
        (" 2 h ", 2 * HOUR),
    ],
)
def test_duration_with_units_is_read_in_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_bare_number_is_refused_because_its_unit_is_a_guess() -> None:
    with pytest.raises(ConfigError, match="number with a unit"):
        parse_duration("30", unit_required=True)


def test_a_bare_number_is_seconds_unless_a_unit_is_required() -> None:
    assert parse_duration("30") == 30.0


def test_unknown_unit_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown unit 'fortnights'.*ms, s"):
        parse_duration("2fortnights", what="--mttr")


def test_month_is_a_twelfth_of_a_julian_year() -> None:
    assert pytest.approx(30.4375 * DAY) == MONTH
    assert pytest.approx(365.25 * DAY) == YEAR


@given(st.integers(min_value=1, max_value=10_000), st.sampled_from(["s", "m", "h", "d"]))
def test_any_whole_duration_round_trips(count: int, unit: str) -> None:
    size = {"s": 1, "m": MINUTE, "h": HOUR, "d": DAY}[unit]
    assert parse_duration(f"{count}{unit}") == count * size


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [-1, -0.5])
def test_a_negative_number_is_refused(value: float) -> None:
    with pytest.raises(ConfigError, match="cannot be negative"):
        parse_duration(value, what="interval")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_number_that_is_not_finite_is_refused(value: float) -> None:
    with pytest.raises(ConfigError, match="not a finite duration"):
        parse_duration(value)


@pytest.mark.parametrize("value", [True, None, [5]])
def test_a_value_that_is_neither_number_nor_text_is_refused(value: object) -> None:
    with pytest.raises(ConfigError, match=r"interval: .* is not a duration; write e\.g\. '20s'"):
        parse_duration(value, what="interval")


def test_an_empty_text_is_refused_with_an_example() -> None:
    with pytest.raises(ConfigError, match=r"timeout: empty; write a number with a unit"):
        parse_duration("  ", what="timeout")


def test_a_trailing_number_without_unit_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"'1h30' is not a duration"):
        parse_duration("1h30")


def test_a_control_character_is_refused_and_shown_escaped() -> None:
    with pytest.raises(ConfigError, match=r"'5s\\x00' is not a duration"):
        parse_duration("5s\x00")


def test_a_text_too_long_to_be_a_duration_is_refused_before_it_is_read() -> None:
    with pytest.raises(ConfigError, match="too long for a duration"):
        parse_duration("1s" * 40)


def test_an_int_beyond_any_float_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a finite duration"):
        parse_duration(10**400)


def test_short_duration_names_the_largest_whole_unit_and_reads_back() -> None:
    from hakeeper.model.durations import parse_duration, short_duration

    assert [short_duration(s) for s in (45, 750, 21600, 183600)] == ["45s", "12.5m", "6.0h", "2.1d"]
    assert parse_duration(short_duration(750)) == 750
