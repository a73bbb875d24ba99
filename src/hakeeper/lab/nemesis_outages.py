"""What each fault of a nemesis run cost the clients: outage per workload, time to recover,
and the elections its heal caused. Pure: reads a `History`, no I/O, no clock.

A fault *disturbs* the cluster from its start to its *reference* moment: its end (the undo:
thaw, heal, ...) for faults the cluster must ride out, its start for the faults the cluster
must mend by itself (a crash, a kill: the revive comes later and is not the cluster's doing).
Every workload must succeed again within `RECOVERY_BOUND` of the *recovery moment*: the
reference moment, or later while the faults in force leave no majority (`recovery_from`).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hakeeper.errors import ConfigError
from hakeeper.lab.nemesis_history import (
    Fault,
    FaultKind,
    History,
    LeaderSample,
    Operation,
    OpKind,
)

#: Seconds from a fault's reference moment until every workload must succeed again, per
#: timing profile. Each is the profile's member TTL (the lease a dead node's claim outlives,
#: `hakeeper.model.timing`) + one Raft election + fencing (the lab's fence device: a fresh
#: process, ~1 s) + the lab services' start and promote timeouts (web service and session
#: store start within ~10 s on a loaded 2-core host), rounded up with room for a noisy
#: machine: fast 1 + 0.3 + ~1 + ~10 → 20 s; default 3 + 1 + ~1 + ~10 plus one 5 s monitor
#: interval, doubled for its slower failure detection → 45 s; wan (10 s TTL, 3 s elections,
#: 10 s monitor) → 90 s.
RECOVERY_BOUND: dict[str, float] = {"fast": 20.0, "default": 45.0, "wan": 90.0}

#: Faults the cluster must mend by itself: recovery counts from their start.
SELF_MENDED: frozenset[FaultKind] = frozenset(
    {"crash", "kill-controller", "kill-raft-leader", "kill-session-primary"}
)

#: Faults that leave a node's agent out of the cluster while in force (the rest, a killed
#: session primary and slow writes, leave every agent a voting member).
NODE_OUT: frozenset[FaultKind] = frozenset(
    {
        "crash",
        "freeze",
        "isolate",
        "halves",
        "partition-controller",
        "kill-controller",
        "kill-raft-leader",
    }
)

#: Faults after whose heal the term must not rise (pre-vote: the member that was cut off
#: rejoins without an election).
HEALED_CUTS: frozenset[FaultKind] = frozenset({"isolate", "halves", "partition-controller"})

#: How long after a heal a rise of the term counts as caused by the heal.
HEAL_WINDOW = 5.0


@dataclass(frozen=True, slots=True)
class FaultOutcome:
    """What one fault cost.

    ``outages``: per workload kind present in the run, the longest stretch without a
    successful operation of that kind overlapping the fault's window (its start to its
    recovery moment plus recovery), or None when no operation of that kind was invoked in
    that window. ``recovered_after``: seconds from the recovery moment until every workload
    succeeded again (None: some workload never did before the run ended). ``elections``:
    rises of the term seen by the nodes the fault did not target, from its undo to
    `HEAL_WINDOW` after it or the next fault's start (None: the fault was never undone, or
    no leader samples there).
    """

    fault: Fault
    outages: Mapping[OpKind, float | None]
    recovered_after: float | None
    elections: int | None


def recovery_bound(profile: str) -> float:
    try:
        return RECOVERY_BOUND[profile]
    except KeyError:
        raise ConfigError(
            f"no recovery bound for timing profile {profile!r}: use one of "
            f"{', '.join(RECOVERY_BOUND)} or add it to hakeeper.lab.nemesis_outages"
        ) from None


def reference(fault: Fault) -> float:
    """When the cluster is on its own again: inf if the fault was never undone."""
    return fault.start if fault.kind in SELF_MENDED else fault.end


def recovery_from(history: History, fault: Fault) -> float:
    """When the cluster can mend again after ``fault``: its reference moment, or later while
    the faults still in force (this one included: a crashed node stays down until its
    revive) leave no majority of the nodes untouched, since no cluster serves without a
    majority; inf if that never ends."""
    at = reference(fault)
    nodes = len(history.run.nodes)
    for _ in range(len(history.faults) + 1):
        active = [f for f in history.faults if f.kind in NODE_OUT and f.start <= at < f.end]
        touched = {node for f in active for node in f.targets}
        if not active or 2 * (nodes - len(touched)) > nodes:
            return at
        at = min(f.end for f in active)
    return at


def recovery_moments(history: History) -> dict[Fault, float]:
    """`recovery_from` of every fault, worked out once per check."""
    return {fault: recovery_from(history, fault) for fault in history.faults}


def history_end(history: History) -> float:
    """The last moment the history saw anything (operations, samples, undos)."""
    times = [history.run.started]
    times += [op.end for op in history.operations]
    times += [s.time for s in history.holders]
    times += [s.time for s in history.leaders]
    times += [f.end for f in history.faults if math.isfinite(f.end)]
    return max(t for t in times if math.isfinite(t))


class Workload:
    """One workload kind's operations, indexed once for the questions asked per fault (a
    long run has ~10^5 operations and ~10^2 faults)."""

    __slots__ = ("_gap_ends", "_gaps", "_max_end_upto", "_min_ok_end_from", "_ok_starts", "_starts")

    def __init__(self, ops: Sequence[Operation], last: float) -> None:
        by_start = sorted(ops, key=lambda op: op.start)
        self._starts = [op.start for op in by_start]
        self._max_end_upto = list(itertools.accumulate((op.end for op in by_start), max))
        ok = [op for op in by_start if op.outcome == "ok"]
        self._ok_starts = [op.start for op in ok]
        ends_from_last = itertools.accumulate((op.end for op in reversed(ok)), min)
        self._min_ok_end_from = list(ends_from_last)[::-1]
        # The stretches without a success: from the first invocation to the first success,
        # between successive successes, and from the last success to the history's end.
        points = [self._starts[0], *sorted(op.end for op in ok), last]
        self._gaps = [(x, y) for x, y in itertools.pairwise(points) if y > x]
        self._gap_ends = [y for _, y in self._gaps]

    def invoked_during(self, start: float, end: float) -> bool:
        """Whether some operation ran during part of [start, end]."""
        upto = bisect.bisect_right(self._starts, end)
        return upto > 0 and self._max_end_upto[upto - 1] >= start

    def first_success_from(self, at: float) -> float | None:
        """When the first operation invoked at or after ``at`` to succeed returned."""
        first = bisect.bisect_left(self._ok_starts, at)
        return self._min_ok_end_from[first] if first < len(self._ok_starts) else None

    def longest_gap(self, start: float, end: float) -> float:
        """The longest stretch without success overlapping [start, end]; the stretches follow
        one another, so those that overlap are one run of them."""
        first = bisect.bisect_right(self._gap_ends, start)
        longest = 0.0
        for x, y in itertools.islice(self._gaps, first, None):
            if x >= end:
                break
            longest = max(longest, y - x)
        return longest


def workloads(history: History) -> dict[OpKind, Workload]:
    """Every workload kind the run had, in the order it first appears."""
    last = history_end(history)
    kinds: dict[OpKind, list[Operation]] = {}
    for op in history.operations:
        kinds.setdefault(op.kind, []).append(op)
    return {kind: Workload(ops, last) for kind, ops in kinds.items()}


def recovered_after(streams: Mapping[OpKind, Workload], at: float) -> float | None:
    """Seconds from ``at`` until an operation of every kind, invoked at or after ``at``,
    succeeded; None if some kind never did."""
    worst = 0.0
    for stream in streams.values():
        returned = stream.first_success_from(at)
        if returned is None:
            return None
        worst = max(worst, returned - at)
    return worst


def outages(
    streams: Mapping[OpKind, Workload], start: float, end: float
) -> dict[OpKind, float | None]:
    """Per workload kind, the longest stretch without success overlapping [start, end]."""
    return {
        kind: stream.longest_gap(start, end) if stream.invoked_during(start, end) else None
        for kind, stream in streams.items()
    }


def _cut_off(history: History, node: str, at: float) -> bool:
    """Whether some fault acted on ``node`` at ``at``, or was undone less than `HEAL_WINDOW`
    before: a node cut off (or just back) reports its own term, not the majority's."""
    return any(node in f.targets and f.start <= at <= f.end + HEAL_WINDOW for f in history.faults)


def _majority(history: History, fault: Fault, lo: float, hi: float) -> list[LeaderSample]:
    """The leader samples in [lo, hi] of the nodes this fault (and any other fault at that
    moment) left alone. The history's leader samples must be in time order (`check_history`
    sorts them)."""
    first = bisect.bisect_left(history.leaders, lo, key=lambda s: s.time)
    upto = bisect.bisect_right(history.leaders, hi, key=lambda s: s.time)
    return [
        s
        for s in history.leaders[first:upto]
        if s.node not in fault.targets and not _cut_off(history, s.node, s.time)
    ]


def elections_after(history: History, fault: Fault) -> int | None:
    """How far the term of the nodes the fault left alone rose within `HEAL_WINDOW` of its
    undo, or until the next fault began if sooner (a rise after that may be the next
    fault's doing: a kill of the Raft leader owes an election): the last term they reported
    before the undo against the highest after it."""
    if not math.isfinite(fault.end):
        return None
    following = min((f.start for f in history.faults if f.start > fault.end), default=math.inf)
    before = _majority(history, fault, fault.start, fault.end)
    after = _majority(history, fault, fault.end, min(fault.end + HEAL_WINDOW, following))
    if not before or not after:
        return None
    last = max(s.time for s in before)
    baseline = max(s.term for s in before if s.time == last)
    return max(0, max(s.term for s in after) - baseline)


def majority_kept_leader(history: History, fault: Fault) -> bool:
    """Whether the nodes the fault left alone reported one leader and one term throughout
    the fault (no samples: nothing says otherwise)."""
    samples = _majority(history, fault, fault.start, fault.end)
    return (
        len({s.leader for s in samples}) <= 1
        and None not in {s.leader for s in samples}
        and len({s.term for s in samples}) <= 1
    )


def covered_by_later(history: History, moments: Mapping[Fault, float], fault: Fault) -> bool:
    """Whether another fault was still disturbing the cluster at this one's reference
    moment, or began within the recovery bound after it: the workloads then recover after
    that fault, and that fault's own check holds them to the bound."""
    at = moments[fault]
    bound = recovery_bound(history.run.profile)
    for other in history.faults:
        if other is fault or other == fault:
            continue
        if other.start <= at < moments[other] or at < other.start < at + bound:
            return True
    return False


def fault_outcome(
    history: History,
    streams: Mapping[OpKind, Workload],
    moments: Mapping[Fault, float],
    fault: Fault,
) -> FaultOutcome:
    at = moments[fault]
    bound = recovery_bound(history.run.profile)
    recovered = recovered_after(streams, at) if math.isfinite(at) else None
    if math.isfinite(at):
        until = at + (recovered if recovered is not None else bound)
    else:
        until = history_end(history)
    if math.isfinite(fault.end):
        until = max(until, fault.end)
    return FaultOutcome(
        fault=fault,
        outages=outages(streams, fault.start, until),
        recovered_after=recovered,
        elections=elections_after(history, fault),
    )
