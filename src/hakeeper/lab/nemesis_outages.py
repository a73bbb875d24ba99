"""What each fault of a nemesis run cost the clients: outage per workload, time to recover,
and the elections its heal caused. Pure: reads a `History`, no I/O, no clock.

A fault *disturbs* the cluster from its start to its *reference* moment: its end (the undo:
thaw, heal, ...) for faults the cluster must ride out, its start for the faults the cluster
must mend by itself (a crash, a kill: the revive comes later and is not the cluster's doing).
Every workload must succeed again within `RECOVERY_BOUND` of the reference moment.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from hakeeper.errors import ConfigError
from hakeeper.lab.nemesis_history import Fault, FaultKind, History, Operation, OpKind

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
    reference moment plus recovery), or None when no operation of that kind was invoked in
    that window. ``recovered_after``: seconds from the reference moment until every workload
    succeeded again (None: some workload never did before the run ended). ``elections``:
    rises of the term seen by the nodes the fault did not target, from its undo to
    `HEAL_WINDOW` after it (None: the fault was never undone, or no leader samples there).
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


def history_end(history: History) -> float:
    """The last moment the history saw anything (operations, samples, undos)."""
    times = [history.run.started]
    times += [op.end for op in history.operations]
    times += [s.time for s in history.holders]
    times += [s.time for s in history.leaders]
    times += [f.end for f in history.faults if math.isfinite(f.end)]
    return max(t for t in times if math.isfinite(t))


def _kinds(operations: Iterable[Operation]) -> list[OpKind]:
    kinds: list[OpKind] = []
    for op in operations:
        if op.kind not in kinds:
            kinds.append(op.kind)
    return kinds


def recovered_after(history: History, at: float) -> float | None:
    """Seconds from ``at`` until an operation of every kind, invoked at or after ``at``,
    succeeded; None if some kind never did."""
    worst = 0.0
    for kind in _kinds(history.operations):
        ends = [
            op.end
            for op in history.operations
            if op.kind == kind and op.outcome == "ok" and op.start >= at
        ]
        if not ends:
            return None
        worst = max(worst, min(ends) - at)
    return worst


def _gaps(successes: Sequence[float], first: float, last: float) -> list[tuple[float, float]]:
    """The stretches without a success between ``first`` (the first invocation) and
    ``last`` (the history's end)."""
    points = [first, *sorted(successes), last]
    return [(a, b) for a, b in itertools.pairwise(points) if b > a]


def outages(history: History, start: float, end: float) -> dict[OpKind, float | None]:
    """Per workload kind, the longest stretch without success overlapping [start, end]."""
    last = history_end(history)
    out: dict[OpKind, float | None] = {}
    for kind in _kinds(history.operations):
        ops = [op for op in history.operations if op.kind == kind]
        if not any(op.start <= end and op.end >= start for op in ops):
            out[kind] = None
            continue
        successes = [op.end for op in ops if op.outcome == "ok"]
        gaps = _gaps(successes, min(op.start for op in ops), last)
        out[kind] = max((b - a for a, b in gaps if a < end and b > start), default=0.0)
    return out


def _majority_terms(history: History, fault: Fault, lo: float, hi: float) -> list[int]:
    return [s.term for s in history.leaders if s.node not in fault.targets and lo <= s.time <= hi]


def elections_after(history: History, fault: Fault) -> int | None:
    """How far the term of the nodes the fault left alone rose within `HEAL_WINDOW` of its
    undo: the last term they reported before the undo against the highest after it."""
    if not math.isfinite(fault.end):
        return None
    before = [
        s
        for s in history.leaders
        if s.node not in fault.targets and fault.start <= s.time <= fault.end
    ]
    after = _majority_terms(history, fault, fault.end, fault.end + HEAL_WINDOW)
    if not before or not after:
        return None
    baseline = max(s.term for s in before if s.time == max(b.time for b in before))
    return max(0, max(after) - baseline)


def majority_kept_leader(history: History, fault: Fault) -> bool:
    """Whether the nodes the fault left alone reported one leader and one term throughout
    the fault (no samples: nothing says otherwise)."""
    samples = [
        s
        for s in history.leaders
        if s.node not in fault.targets and fault.start <= s.time <= fault.end
    ]
    return (
        len({s.leader for s in samples}) <= 1
        and None not in {s.leader for s in samples}
        and len({s.term for s in samples}) <= 1
    )


def covered_by_later(history: History, fault: Fault) -> bool:
    """Whether another fault was still disturbing the cluster at this one's reference
    moment, or began within the recovery bound after it: the workloads then recover after
    that fault, and that fault's own check holds them to the bound."""
    at = reference(fault)
    bound = recovery_bound(history.run.profile)
    for other in history.faults:
        if other is fault or other == fault:
            continue
        if other.start <= at < reference(other) or at < other.start < at + bound:
            return True
    return False


def fault_outcome(history: History, fault: Fault) -> FaultOutcome:
    at = reference(fault)
    bound = recovery_bound(history.run.profile)
    recovered = recovered_after(history, at) if math.isfinite(at) else None
    if math.isfinite(at):
        until = at + (recovered if recovered is not None else bound)
    else:
        until = history_end(history)
    if math.isfinite(fault.end):
        until = max(until, fault.end)
    return FaultOutcome(
        fault=fault,
        outages=outages(history, fault.start, until),
        recovered_after=recovered,
        elections=elections_after(history, fault),
    )
