"""What this node's loops measure about themselves, for the metrics face to read.

The daemon's loops report through `Observer` (membership: each lease renewal's latency;
controller: each scheduler run, each fence and each finished failover); `Observations` is the
one in-process implementation, plain counters and fixed-bucket histograms that cost a few
additions on the path they measure. Nothing here knows Prometheus: the API layer turns a
`Observations` into metric families at scrape time (``hakeeper.api.metrics``), so the runtime
stays free of the client library and a test can hand the loops a fake.

Counters are this process's, from its start, as Prometheus expects of a counter: a failover
is counted by the controller that finished it, so the cluster's total is the sum over nodes.
Labels are bounded: a label value is a node or a resource name of the config, and past
`MAX_SERIES` distinct values new ones are counted under `OTHER` instead of growing the map.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

#: Seconds. A renewal is one round trip to the engine's leader: milliseconds when healthy,
#: up to the renew timeout (twice the renew interval) when not.
RENEWAL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Seconds. One pure `schedule()` over a snapshot: sub-millisecond for a few resources.
SCHEDULER_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
#: Seconds. A fence device's request to confirmation (fence agents take seconds).
FENCE_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
#: Seconds. Detected failure (lease expiry or failed monitor) to the new instance started:
#: under a second on the "fast" profile with a quick fence device, minutes with a slow one.
FAILOVER_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0)
#: Distinct label values kept per counter; more are folded into `OTHER`.
MAX_SERIES = 1000
OTHER = "_other"

K = TypeVar("K")


class Observer(Protocol):
    """What the daemon's loops report; each call is cheap and never raises."""

    def lease_renewed(self, seconds: float) -> None:
        """A member-lease renewal the engine confirmed, ``seconds`` after it was sent."""

    def lease_renewal_failed(self) -> None:
        """A renewal that did not confirm (engine error, timeout, or the lease was gone)."""

    def scheduler_ran(self, seconds: float) -> None:
        """One run of the pure scheduler by the controller on this node."""

    def fence_finished(self, node: str, ok: bool, seconds: float) -> None:
        """A fence of ``node`` by this node's controller; ``ok``: the device confirmed it."""

    def failover_finished(self, resource: str, seconds: float) -> None:
        """An exclusive resource restarted elsewhere after its node or instance failed."""


@dataclass(slots=True)
class Histogram:
    """Counts per upper bound (the last is +Inf), their sum, and how many."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bucket (le = "less or equal").
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or below it), the last bound ``inf``."""
        running = 0
        out = []
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out


def _bump(counter: dict[K, int], key: K, other: K) -> None:
    if key not in counter and len(counter) >= MAX_SERIES:
        key = other
    counter[key] = counter.get(key, 0) + 1


@dataclass(slots=True)
class Observations:
    """The one `Observer`: everything the loops of this process reported since it started."""

    lease_renewal: Histogram = field(default_factory=lambda: Histogram(RENEWAL_BUCKETS))
    lease_renewal_failures: int = 0
    scheduler_run: Histogram = field(default_factory=lambda: Histogram(SCHEDULER_BUCKETS))
    fence_duration: Histogram = field(default_factory=lambda: Histogram(FENCE_BUCKETS))
    #: (fenced node, "success" | "failure") → fence operations.
    fences: dict[tuple[str, str], int] = field(default_factory=dict)
    failover_duration: Histogram = field(default_factory=lambda: Histogram(FAILOVER_BUCKETS))
    #: resource → failovers finished.
    failovers: dict[str, int] = field(default_factory=dict)

    def lease_renewed(self, seconds: float) -> None:
        self.lease_renewal.observe(seconds)

    def lease_renewal_failed(self) -> None:
        self.lease_renewal_failures += 1

    def scheduler_ran(self, seconds: float) -> None:
        self.scheduler_run.observe(seconds)

    def fence_finished(self, node: str, ok: bool, seconds: float) -> None:
        self.fence_duration.observe(seconds)
        result = "success" if ok else "failure"
        _bump(self.fences, (node, result), (OTHER, result))

    def failover_finished(self, resource: str, seconds: float) -> None:
        self.failover_duration.observe(seconds)
        _bump(self.failovers, resource, OTHER)
