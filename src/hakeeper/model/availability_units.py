"""Availability figures, SLA periods and durations for people.

Durations are read by `hakeeper.model.durations` (the one grammar), always with a unit here:
"30" could be seconds, minutes or hours, and a wrong guess is off by a factor of 60. Calendar
periods use the Julian year of 365.25 days ("99.95 % monthly" = 21 min 54 s).

Availability figures: ``"99.95%"``, ``"99.95"`` (a number above 1 is a percentage),
``"0.9995"`` (a fraction), or nines: ``"4 nines"`` / ``"4n"`` (99.99 %).
"""

from __future__ import annotations

import math

from hakeeper.errors import ConfigError
from hakeeper.model.durations import (
    DAY,
    HOUR,
    MINUTE,
    MONTH,
    QUARTER,
    SECOND,
    WEEK,
    YEAR,
    parse_duration,
)

# The periods an SLA or a downtime table is stated over, longest first.
PERIODS: dict[str, float] = {
    "year": YEAR,
    "quarter": QUARTER,
    "month": MONTH,
    "week": WEEK,
    "day": DAY,
}

_PERIOD_WORDS = {
    "yearly": "year",
    "annual": "year",
    "annually": "year",
    "year": "year",
    "quarterly": "quarter",
    "quarter": "quarter",
    "monthly": "month",
    "month": "month",
    "weekly": "week",
    "week": "week",
    "daily": "day",
    "day": "day",
}


def format_duration(seconds: float, parts: int = 3) -> str:
    """A duration for people: ``"21 min 54 s"``, ``"8 h 45 min 57 s"``, ``"3.2 s"``.

    At most `parts` units, largest first, zero units skipped; below a minute it keeps one
    decimal, below a second it shows milliseconds.
    """
    if math.isinf(seconds):
        return "forever"
    if seconds < 0:
        return "-" + format_duration(-seconds, parts)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms" if seconds > 0 else "0 s"
    if seconds < 60:
        return f"{seconds:.1f} s".replace(".0 s", " s")
    # Truncate to whole seconds: a budget shown is never more than the budget there is
    # (99.95 % monthly = 1314.9 s shows as 21 min 54 s, as SLA tables print it).
    remaining = float(math.floor(round(seconds, 3)))  # round first: 1799.9999 is 30 min
    out: list[str] = []
    for name, size in (("y", YEAR), ("d", DAY), ("h", HOUR), ("min", MINUTE), ("s", SECOND)):
        count = int(remaining // size)
        if count or out:
            if count:
                out.append(f"{count} {name}")
            remaining -= count * size
        if len(out) == parts:
            break
    return " ".join(out) if out else "0 s"


def parse_availability(text: str, what: str = "availability") -> float:
    """A fraction in [0, 1] from ``"99.95%"``, ``"99.95"``, ``"0.9995"`` or ``"4 nines"``."""
    cleaned = text.strip().lower().replace(" ", "")
    try:
        if cleaned.endswith("nines") or cleaned.endswith("n"):
            nines = float(cleaned.removesuffix("nines").removesuffix("n"))
            return 1 - 10**-nines
        if cleaned.endswith("%"):
            value = float(cleaned[:-1]) / 100
        else:
            number = float(cleaned)
            value = number / 100 if number > 1 else number
    except ValueError as exc:
        raise ConfigError(
            f"{what}: cannot read {text!r}; write e.g. 99.95%, 0.9995 or '4 nines'"
        ) from exc
    if not 0 <= value <= 1:
        raise ConfigError(f"{what}: {text!r} is not between 0 and 100 %")
    return value


def parse_period(text: str, what: str = "period") -> float:
    """Seconds in a named period (``"monthly"``, ``"year"``) or any duration (``"30d"``)."""
    word = text.strip().lower()
    if word in _PERIOD_WORDS:
        return PERIODS[_PERIOD_WORDS[word]]
    return parse_duration(text, what=what, unit_required=True)


def parse_sla(text: str, what: str = "SLA") -> tuple[float, float, str]:
    """``"99.95% monthly"`` → (0.9995, seconds in a month, "month").

    Without a period the SLA is yearly. The period may be a name or a duration (``"30d"``).
    """
    pieces = text.strip().split()
    if not pieces:
        raise ConfigError(f"{what}: empty; write e.g. '99.95% monthly'")
    target = parse_availability(pieces[0], what)
    period_text = " ".join(pieces[1:]) or "yearly"
    period = parse_period(period_text, what)
    name = _PERIOD_WORDS.get(period_text.lower(), period_text)
    return target, period, name


def format_percent(value: float) -> str:
    """An availability as a percentage with enough digits to show its nines.

    99.99 % shows as ``99.99%``, not ``100.00%``; a value that rounds to 100 % at 6 decimals
    but is not exactly 1 shows as ``>99.999999%``, never as 100 %.
    """
    if value >= 1:
        return "100%"
    if value <= 0:
        return "0%"
    digits = max(2, min(6, math.ceil(-math.log10(1 - value)) + 1))
    shown = f"{value * 100:.{digits}f}".rstrip("0").rstrip(".")
    if float(shown) >= 100:
        return ">99.999999%"
    return shown + "%"
