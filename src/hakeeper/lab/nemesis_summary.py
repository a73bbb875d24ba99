"""A nemesis run's faults summed up by kind: how many, and the client-observed outage per
workload over them (median, p99, max). Pure: no I/O, no clock."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hakeeper.lab.nemesis_history import FaultKind, OpKind
from hakeeper.lab.nemesis_outages import FaultOutcome


@dataclass(frozen=True, slots=True)
class Spread:
    median: float
    p99: float
    max: float


@dataclass(frozen=True, slots=True)
class KindSummary:
    kind: FaultKind
    count: int
    #: Per workload, over this kind's faults that saw operations of it.
    outages: Mapping[OpKind, Spread]
    #: Term rises after this kind's undos (faults with no measurement left out).
    elections: int


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest rank: a value that was measured, never one interpolated between two."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def spread(values: Sequence[float]) -> Spread:
    return Spread(percentile(values, 50), percentile(values, 99), max(values))


def by_kind(outcomes: Sequence[FaultOutcome]) -> tuple[KindSummary, ...]:
    """One summary per fault kind, in the order the kinds first occurred."""
    kinds: list[FaultKind] = []
    for outcome in outcomes:
        if outcome.fault.kind not in kinds:
            kinds.append(outcome.fault.kind)
    out = []
    for kind in kinds:
        mine = [o for o in outcomes if o.fault.kind == kind]
        seen: dict[OpKind, list[float]] = {}
        for outcome in mine:
            for workload, seconds in outcome.outages.items():
                if seconds is not None:
                    seen.setdefault(workload, []).append(seconds)
        out.append(
            KindSummary(
                kind=kind,
                count=len(mine),
                outages={w: spread(v) for w, v in seen.items()},
                elections=sum(o.elections or 0 for o in mine),
            )
        )
    return tuple(out)
