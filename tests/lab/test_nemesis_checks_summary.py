"""Faults summed up by kind: count, outage spread per workload, elections on heal."""

from __future__ import annotations

import pytest

from hakeeper.lab.nemesis_history import Fault, FaultKind
from hakeeper.lab.nemesis_outages import FaultOutcome
from hakeeper.lab.nemesis_summary import Spread, by_kind, percentile


def outcome(
    kind: FaultKind, start: float, http: float | None, elections: int | None
) -> FaultOutcome:
    fault = Fault(kind, ("n1",), start, start + 5.0)
    return FaultOutcome(fault, {"http-get": http}, 1.0, elections)


def test_p99_is_a_measured_value_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0


def test_faults_are_summed_per_kind_in_the_order_they_first_occurred() -> None:
    summaries = by_kind(
        [
            outcome("isolate", 0.0, 0.5, 0),
            outcome("crash", 10.0, 2.0, None),
            outcome("isolate", 20.0, 1.5, 1),
            outcome("isolate", 30.0, None, 0),  # no HTTP request during it: left out
        ]
    )
    assert [(s.kind, s.count) for s in summaries] == [("isolate", 3), ("crash", 1)]
    isolate, crash = summaries
    assert isolate.outages["http-get"] == Spread(median=0.5, p99=1.5, max=1.5)
    assert isolate.elections == 1
    assert crash.outages["http-get"].max == pytest.approx(2.0)
    assert crash.elections == 0
