"""Scores saturate like Pacemaker's: a ban always wins, infinity absorbs finite values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hakeeper.errors import ConfigError
from hakeeper.model.scores import INF, add, format_score, parse_score


def test_minus_inf_wins_over_plus_inf() -> None:
    assert add(INF, -INF) == -INF


def test_inf_absorbs_finite_scores() -> None:
    assert add(INF, -500) == INF


def test_finite_scores_add_and_clamp() -> None:
    assert add(100, 50) == 150
    assert add(900_000, 900_000) == INF


@pytest.mark.parametrize(("text", "score"), [("inf", INF), ("-INFINITY", -INF), ("42", 42), (7, 7)])
def test_parse(text: str | int, score: int) -> None:
    assert parse_score(text) == score


def test_parse_refuses_booleans() -> None:
    with pytest.raises(ConfigError):
        parse_score(True)


@given(st.integers(-2 * INF, 2 * INF))
def test_format_round_trips(value: int) -> None:
    assert parse_score(format_score(parse_score(value))) == parse_score(value)
