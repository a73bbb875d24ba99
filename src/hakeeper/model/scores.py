"""Placement scores: integers with Pacemaker's saturating infinities.

A score is an ``int`` clamped to ``[-INF, INF]`` where ``INF`` is 1,000,000 (Pacemaker's
INFINITY). Adding scores saturates: ``-INF`` plus anything is ``-INF`` (a ban always wins),
otherwise ``INF`` plus anything is ``INF``. A node with a negative score cannot run the
resource, as in Pacemaker.
"""

from __future__ import annotations

from hakeeper.errors import ConfigError

INF = 1_000_000

_WORDS = {
    "inf": INF,
    "+inf": INF,
    "infinity": INF,
    "+infinity": INF,
    "-inf": -INF,
    "-infinity": -INF,
}


def clamp(value: int) -> int:
    return max(-INF, min(INF, value))


def add(*scores: int) -> int:
    """Saturating sum: any -INF gives -INF, else any INF gives INF, else the clamped sum."""
    if any(s <= -INF for s in scores):
        return -INF
    if any(s >= INF for s in scores):
        return INF
    return clamp(sum(scores))


def parse_score(value: object) -> int:
    """``100``, ``-50``, ``"inf"``, ``"-inf"`` (also ``"INFINITY"``) to an int score."""
    if isinstance(value, bool):
        raise ConfigError(f"{value!r} is not a score (use an integer, inf or -inf)")
    if isinstance(value, int):
        return clamp(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _WORDS:
            return _WORDS[text]
        try:
            return clamp(int(text))
        except ValueError:
            pass
    raise ConfigError(f"{value!r} is not a score (use an integer, inf or -inf)")


def format_score(score: int) -> str:
    if score >= INF:
        return "inf"
    if score <= -INF:
        return "-inf"
    return str(score)
