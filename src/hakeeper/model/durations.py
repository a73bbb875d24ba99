"""Durations as people write them: one grammar for the cluster file, agents and the CLI.

A duration is a number of seconds (an int or float from TOML), or text:

- a number with a unit, several run together: ``"500ms"``, ``"20s"``, ``"1h30m"``, ``"1.5d"``;
  white space and letter case do not matter (``" 2 h "``, ``"20S"``);
- an ISO 8601 time (OCF agents advertise these): ``"PT1M5S"``;
- a bare number, ``"15"``: seconds, as in Pacemaker, unless the caller asks for a unit
  (``unit_required=True``, the availability tools: there "30" could be seconds, minutes or
  hours, and a wrong guess is off by a factor of 60).

Calendar units use the Julian year of 365.25 days, so a month is 365.25/12 = 30.4375 days and a
quarter 91.3125 days: the convention most cloud SLAs state. `docs/config.md` has the table.
"""

from __future__ import annotations

import math
import re

from hakeeper.errors import ConfigError

SECOND = 1.0
MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
WEEK = 7 * DAY
YEAR = 365.25 * DAY
QUARTER = YEAR / 4
MONTH = YEAR / 12

UNITS: dict[str, float] = {
    "us": 0.000001,
    "usec": 0.000001,
    "ms": 0.001,
    "msec": 0.001,
    "s": SECOND,
    "sec": SECOND,
    "m": MINUTE,
    "min": MINUTE,
    "h": HOUR,
    "hr": HOUR,
    "d": DAY,
    "w": WEEK,
    "mo": MONTH,
    "q": QUARTER,
    "y": YEAR,
}
# Errors list the short names; the long ones are spellings of the same units.
_UNIT_NAMES = "us, ms, s, m, h, d, w, mo, q, y (also usec, msec, sec, min, hr)"

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_BARE = re.compile(_NUMBER)
_PART = re.compile(rf"({_NUMBER})([a-z]+)")
_ISO = re.compile(rf"p(?:t(?:({_NUMBER})h)?(?:({_NUMBER})m)?(?:({_NUMBER})s)?)")
_SPACE = re.compile(r"\s+")
# Long enough for any duration a person writes; bounds the work on hostile input.
MAX_TEXT = 64


def parse_duration(value: object, *, what: str = "duration", unit_required: bool = False) -> float:
    """Seconds in ``value`` (see the module docstring); ConfigError names ``what`` and the fix.

    ``unit_required`` refuses text that is a bare number; a number that is not text (an int or
    float from a TOML file) is always seconds.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{what}: {value!r} is not a duration; write e.g. '20s' or '500ms'")
    if not isinstance(value, str):
        try:
            seconds = float(value)
        except OverflowError:  # an int beyond any float
            seconds = math.inf
        return _checked(seconds, value, what)
    if len(value) > MAX_TEXT:
        raise ConfigError(
            f"{what}: {len(value)} characters is too long for a duration; write e.g. '20s'"
        )
    text = _SPACE.sub("", value).lower()
    if not text:
        raise ConfigError(f"{what}: empty; write a number with a unit, e.g. 30s, 30m or 2000h")
    if _BARE.fullmatch(text):
        if unit_required:
            raise ConfigError(
                f"{what}: {value!r} has no unit; write a number with a unit, "
                f"e.g. {text}s, {text}m or {text}h"
            )
        return _checked(float(text), value, what)
    iso = _ISO.fullmatch(text)
    if iso and any(iso.groups()):
        hours, minutes, seconds = (float(g) if g else 0.0 for g in iso.groups())
        return _checked(hours * HOUR + minutes * MINUTE + seconds, value, what)
    return _checked(_sum_of_parts(text, value, what), value, what)


def _sum_of_parts(text: str, value: str, what: str) -> float:
    """``"1h30m"`` → 5400.0: every part a number and a known unit, nothing left over."""
    position = 0
    total = 0.0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        number, unit = match.groups()
        if unit not in UNITS:
            raise ConfigError(
                f"{what}: unknown unit {unit!r} in {value!r}; use one of {_UNIT_NAMES}"
            )
        total += float(number) * UNITS[unit]
        position = match.end()
    if position != len(text) or position == 0:
        raise ConfigError(
            f"{what}: {value!r} is not a duration; write a number with a unit, "
            "e.g. 500ms, 20s, 2m, 1h or 1h30m"
        )
    return total


def _checked(seconds: float, value: object, what: str) -> float:
    if seconds < 0:
        raise ConfigError(f"{what}: a duration cannot be negative ({value!r}); use 0 or more")
    if not math.isfinite(seconds):
        raise ConfigError(f"{what}: {value!r} is not a finite duration; write e.g. '20s'")
    return seconds


def short_duration(seconds: float) -> str:
    """A duration in its largest whole unit, for messages: ``45s``, ``12.5m``, ``6.0h``,
    ``2.1d`` (the grammar above reads each back)."""
    for unit, size in (("d", DAY), ("h", HOUR), ("m", MINUTE)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"
