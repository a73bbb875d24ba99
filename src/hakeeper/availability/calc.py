"""Closed forms of steady-state availability.

Assumptions, stated once: components fail and are repaired independently of each other;
times to failure and to repair are exponential (only their means matter for the steady
state, so MTBF/MTTR figures from any distribution give the right long-run availability, but
the failure *frequency* of redundant groups below needs the memoryless property); repair
crews are unlimited (a repair never waits for another).

- One component: ``A = MTBF / (MTBF + MTTR)``; nines = ``−log10(1 − A)``.
- Series (all needed): ``A = Π Aᵢ``.
- Parallel (any one suffices): ``A = 1 − Π (1 − Aᵢ)``.
- k-of-n (at least k needed): identical members ``Σ_{i=k..n} C(n,i) Aⁱ (1−A)ⁿ⁻ⁱ``; different
  members by dynamic programming over "how many are up" (`k_of_n`).
- Failure frequency of a structure (failures per second, needed to nest groups and to give a
  system its equivalent MTBF and MTTR): ``f = Σᵢ fᵢ · Iᵢ``, where ``fᵢ = 1/(MTBFᵢ + MTTRᵢ)`` is
  how often member i fails and ``Iᵢ = A(system | i up) − A(system | i down)`` (Birnbaum
  importance) is the chance that i's failure is the one that brings the system down. Then
  ``MTBF_eq = A/f`` and ``MTTR_eq = (1−A)/f``.
- Switch-over is not free. In a redundant group whose active member(s) must hand over when
  they fail (a virtual IP, a primary), each such failure costs the failover time ``t_f`` even
  when a standby is ready. The group's unavailability is
  ``U = U_structure + Λ_active · t_f``, with ``Λ_active = Σ_{active} 1/MTBFᵢ`` over the
  members that are active: the first one for a parallel group, the first k for k-of-n. This
  is the first-order term (it double-counts failovers that happen while the group is down
  anyway, which is negligible when U is small, and conservative). Each switch-over is also an
  outage, so the group's failure frequency grows by ``Λ_active``.

SLA budget: allowed downtime in a period = ``(1 − target) × period``; with the month as
365.25/12 days, 99.95 % monthly = 21 min 54 s (see `hakeeper.model.availability_units`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from hakeeper.errors import ConfigError
from hakeeper.model.availability_units import PERIODS


@dataclass(frozen=True, slots=True)
class Figures:
    """Steady-state view of a component or a system.

    ``frequency`` is failures per second; ``None`` when only an availability was given (then
    MTBF and MTTR are unknown, and the thing cannot be the active member of a failover group).
    """

    availability: float
    frequency: float | None = None

    @property
    def unavailability(self) -> float:
        return 1.0 - self.availability

    @property
    def mtbf(self) -> float | None:
        """Mean up time between failures (seconds)."""
        if self.frequency is None:
            return None
        return math.inf if self.frequency == 0 else self.availability / self.frequency

    @property
    def mttr(self) -> float | None:
        """Mean time to repair (seconds)."""
        if self.frequency is None:
            return None
        return 0.0 if self.frequency == 0 else self.unavailability / self.frequency

    @property
    def failure_rate(self) -> float | None:
        """λ = 1/MTBF, failures per second of up time."""
        if self.frequency is None:
            return None
        return 0.0 if self.availability == 0 else self.frequency / self.availability


def availability(mtbf: float, mttr: float) -> float:
    """``A = MTBF / (MTBF + MTTR)``."""
    if mtbf < 0 or mttr < 0:
        raise ConfigError("MTBF and MTTR must not be negative")
    if mtbf + mttr == 0:
        raise ConfigError("MTBF and MTTR cannot both be zero")
    return mtbf / (mtbf + mttr)


def component(mtbf: float, mttr: float) -> Figures:
    """A single repairable component."""
    if mtbf <= 0:
        raise ConfigError("MTBF must be above zero: a component that never works is not one")
    return Figures(availability(mtbf, mttr), 1.0 / (mtbf + mttr))


def nines(a: float) -> float:
    """``−log10(1 − A)``: 0.999 → 3.0; infinite for A = 1."""
    if a >= 1:
        return math.inf
    return -math.log10(1 - a)


def downtime(a: float, period: float) -> float:
    """Expected seconds down in `period` seconds at availability `a`."""
    return (1 - a) * period


def downtime_per_period(a: float) -> dict[str, float]:
    """Expected downtime (seconds) per year, quarter, month, week and day."""
    return {name: downtime(a, seconds) for name, seconds in PERIODS.items()}


def sla_budget(target: float, period: float) -> float:
    """Downtime (seconds) an SLA of `target` allows per `period` seconds."""
    return (1 - target) * period


def series(avails: Sequence[float]) -> float:
    """All members needed: ``Π Aᵢ``."""
    return math.prod(avails)


def parallel(avails: Sequence[float]) -> float:
    """Any one member suffices: ``1 − Π (1 − Aᵢ)``."""
    return 1 - math.prod(1 - a for a in avails)


def k_of_n_identical(k: int, n: int, a: float) -> float:
    """At least k of n identical members up: ``Σ_{i=k..n} C(n,i) Aⁱ (1−A)ⁿ⁻ⁱ``."""
    _check_k(k, n)
    return sum(math.comb(n, i) * a**i * (1 - a) ** (n - i) for i in range(k, n + 1))


def k_of_n(k: int, avails: Sequence[float]) -> float:
    """At least k of the members up, members not necessarily identical.

    ``up[j]`` is the probability that exactly j of the members seen so far are up; each member
    shifts it by one with probability Aᵢ. O(n²), exact.
    """
    _check_k(k, len(avails))
    up = [1.0]
    for a in avails:
        shifted = [0.0] * (len(up) + 1)
        for j, p in enumerate(up):
            shifted[j] += p * (1 - a)
            shifted[j + 1] += p * a
        up = shifted
    return sum(up[k:])


def _check_k(k: int, n: int) -> None:
    if n < 1:
        raise ConfigError("a group needs at least one member")
    if not 1 <= k <= n:
        raise ConfigError(f"k-of-n needs 1 ≤ k ≤ n; got k={k}, n={n}")


def group(
    k: int,
    members: Sequence[Figures],
    failover: float = 0.0,
    active: int | None = None,
) -> Figures:
    """A group needing at least k of its members, with the switch-over cost of `failover`.

    Series is ``k = len(members)``, parallel ``k = 1``. `active` is how many members carry
    the load and must hand over when they fail (default k; only the first `active` members
    are counted). Failover time is charged only when a spare exists (k < n).
    """
    n = len(members)
    avails = [m.availability for m in members]
    a_struct = k_of_n(k, avails)
    frequency: float | None = _structure_frequency(k, members)
    if failover > 0 and k < n:
        active_members = members[: active if active is not None else k]
        rates = [m.failure_rate for m in active_members]
        if any(rate is None for rate in rates):
            raise ConfigError(
                "failover time needs the MTBF of the active member(s); give mtbf and mttr "
                "instead of a bare availability"
            )
        switch_rate = sum(rate for rate in rates if rate is not None)
        u = min(1.0, (1 - a_struct) + switch_rate * failover)
        frequency = None if frequency is None else frequency + switch_rate
        return Figures(1 - u, frequency)
    return Figures(a_struct, frequency)


def _structure_frequency(k: int, members: Sequence[Figures]) -> float | None:
    """``Σ fᵢ · (A(sys | i up) − A(sys | i down))``, or None if a member's frequency is unknown."""
    if any(m.frequency is None for m in members):
        return None
    avails = [m.availability for m in members]
    total = 0.0
    for i, member in enumerate(members):
        up = k_of_n(k, [*avails[:i], 1.0, *avails[i + 1 :]])
        down = k_of_n(k, [*avails[:i], 0.0, *avails[i + 1 :]])
        total += (member.frequency or 0.0) * (up - down)
    return total


def series_of(members: Sequence[Figures]) -> Figures:
    return group(len(members), members)


def parallel_of(members: Sequence[Figures], failover: float = 0.0) -> Figures:
    return group(1, members, failover)


# --- the inverse questions ------------------------------------------------------------------


def mttr_for_target(mtbf: float, target: float) -> float:
    """Longest MTTR that still reaches `target` for one component: ``MTBF·(1−A)/A``."""
    _check_target(target)
    return mtbf * (1 - target) / target


def mtbf_for_target(mttr: float, target: float) -> float:
    """Shortest MTBF that still reaches `target` for one component: ``MTTR·A/(1−A)``."""
    _check_target(target)
    if target == 1:
        return math.inf
    return mttr * target / (1 - target)


def failover_for_target(k: int, n: int, member: Figures, target: float) -> float | None:
    """Longest failover time with which k-of-n identical `member`s still reach `target`.

    None when even an instant failover misses it (then more members or better ones help,
    a faster failover does not).
    """
    _check_target(target)
    base = group(k, [member] * n)
    if base.availability < target or k == n:
        return None if base.availability < target else math.inf
    rate = member.failure_rate
    if rate is None:
        raise ConfigError("failover time needs the member's MTBF, not a bare availability")
    if rate == 0:
        return math.inf
    return ((1 - target) - base.unavailability) / (k * rate)


def smallest_n(
    k: int, member: Figures, target: float, failover: float = 0.0, max_n: int = 64
) -> int | None:
    """Fewest identical members so that k-of-n reaches `target` (k = 1: parallel).

    None if no n up to `max_n` does — typically because the failover penalty alone,
    ``k·λ·t_f``, already exceeds the budget ``1 − target``: extra spares cannot buy back time
    spent switching over.
    """
    _check_target(target)
    for n in range(k, max_n + 1):
        if group(k, [member] * n, failover).availability >= target:
            return n
    return None


def _check_target(target: float) -> None:
    if not 0 < target <= 1:
        raise ConfigError(f"target availability must be in (0, 100 %], got {target!r}")
