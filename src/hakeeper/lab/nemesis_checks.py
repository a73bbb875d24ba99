"""The checkers of a nemesis run: every invariant over its whole `History`, and what each
fault cost (`hakeeper.lab.nemesis_outages`). Pure: no I/O, no clock.

Every invariant must count 0 violations for the run to pass:

- ``vip-single-holder``, ``singleton-single-holder``: no holder sample names two nodes; for
  the singleton also no overlap in its own start/stop records (`hakeeper.lab.holders`), a
  holder without a stop line ending when a crash fault cut its node or when a sample first
  found no singleton process on its node;
- ``session-no-lost-write``: the run's final read of every key (after everything was healed)
  returns a write no acknowledged write followed, so every acknowledged write was either
  overwritten or is still there;
- ``session-linearizable``: per key, the history of writes and reads is linearizable
  (`hakeeper.lab.linearizability`);
- ``recovery-within-bound``: after every fault every workload succeeds again within the
  profile's bound (`RECOVERY_BOUND`);
- ``no-election-on-heal``: the term does not rise within `HEAL_WINDOW` of the heal of an
  isolation or partition when the majority kept its leader throughout.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from hakeeper.lab import holders as holder_records
from hakeeper.lab import linearizability as lin
from hakeeper.lab.nemesis_history import Fault, History, Operation, RunInfo
from hakeeper.lab.nemesis_outages import (
    HEAL_WINDOW,
    HEALED_CUTS,
    FaultOutcome,
    covered_by_later,
    fault_outcome,
    history_end,
    majority_kept_leader,
    recovery_bound,
    recovery_moments,
    workloads,
)

#: How many examples of each invariant's violations a verdict keeps.
EXAMPLES = 5
#: Search steps the linearizability checker may spend on one key before giving up.
LINEARIZABILITY_BUDGET = 2_000_000

INVARIANTS = (
    "vip-single-holder",
    "singleton-single-holder",
    "session-no-lost-write",
    "session-linearizable",
    "recovery-within-bound",
    "no-election-on-heal",
)


@dataclass(frozen=True, slots=True)
class InvariantResult:
    name: str
    violations: int
    examples: tuple[str, ...]  # the first few, each saying what and when

    @property
    def ok(self) -> bool:
        return self.violations == 0


@dataclass(frozen=True, slots=True)
class Verdict:
    run: RunInfo
    invariants: tuple[InvariantResult, ...]
    faults: tuple[FaultOutcome, ...]
    ok: bool  # every invariant counted 0


def _result(name: str, found: list[str]) -> InvariantResult:
    return InvariantResult(name, len(found), tuple(found[:EXAMPLES]))


def _sampled_single_holder(history: History, what: str) -> list[str]:
    return [
        f"{what} held by {', '.join(s.holders)} at {s.time:.3f}"
        for s in history.holders
        if s.what == what and len(s.holders) > 1
    ]


def _singleton_down_since(history: History) -> holder_records.DownSince:
    """When a singleton without a stop line certainly ended: the first crash or confirmed
    fence of its node after it started (every process there was dead by then), or the first
    sample after it started that found no singleton process on its node (a process killed
    by SIGKILL, by the agent's stop escalation or a kill fault, writes no stop line; the
    sampler scans every process of the host, and it took its time before the scan, so a
    sample not naming the node saw the process gone). The sample is the coarsest: a fence
    that ended it between two samples, just before its successor started, is not an overlap."""
    cuts = [(n, f.start) for f in history.faults if f.kind == "crash" for n in f.targets]
    cuts += history.fenced
    samples = sorted((s for s in history.holders if s.what == "singleton"), key=lambda s: s.time)

    def down_since(node: str, started: float) -> float | None:
        cut = min((at for n, at in cuts if n == node and at >= started), default=None)
        gone = next((s.time for s in samples if s.time >= started and node not in s.holders), None)
        return min((t for t in (cut, gone) if t is not None), default=None)

    return down_since


def check_singleton(history: History) -> InvariantResult:
    found = _sampled_single_holder(history, "singleton")
    pairs = holder_records.overlaps(history.singleton_records, _singleton_down_since(history))
    found += [holder_records.describe([pair]) for pair in pairs]
    return _result("singleton-single-holder", found)


def _by_key(history: History) -> dict[str, list[Operation]]:
    keys: dict[str, list[Operation]] = defaultdict(list)
    for op in history.operations:
        if op.kind in ("session-write", "session-read"):
            keys[op.key].append(op)
    return keys


def _final_read(ops: list[Operation], healed: float) -> Operation | None:
    """The last successful read of a key invoked after every fault was undone and after
    every write to it returned."""
    writes_done = max((op.end for op in ops if op.kind == "session-write"), default=-math.inf)
    reads = [
        op
        for op in ops
        if op.kind == "session-read"
        and op.outcome == "ok"
        and op.start >= healed
        and op.start >= writes_done
    ]
    return max(reads, key=lambda op: op.start, default=None)


def _lost_writes(key: str, ops: list[Operation], healed: float) -> list[str]:
    writes = [op for op in ops if op.kind == "session-write"]
    acked = [w for w in writes if w.outcome == "ok"]
    if not acked:
        return []
    final = _final_read(ops, healed)
    if final is None:
        return [
            f"key {key}: no final read after the last heal ({healed:.3f}) and its last "
            f"write; {len(acked)} acknowledged write(s) unverified"
        ]
    if final.value is None:
        return [
            f"key {key}: final read at {final.start:.3f} found nothing; acknowledged "
            f"{w.value!r} ({w.start:.3f}-{w.end:.3f}) lost"
            for w in acked
        ]
    source = [w for w in writes if w.value == final.value and w.outcome != "fail"]
    if not source:
        return [
            f"key {key}: final read at {final.start:.3f} returned {final.value!r}, which no "
            "acknowledged or unanswered write wrote"
        ]
    written = source[0]
    return [
        f"key {key}: acknowledged {w.value!r} ({w.start:.3f}-{w.end:.3f}) lost: the final "
        f"read returned {final.value!r}, written before it ({written.start:.3f}-"
        f"{written.end:.3f})"
        for w in acked
        if w.start > written.end
    ]


def check_lost_writes(history: History) -> InvariantResult:
    healed = max((f.end for f in history.faults), default=-math.inf)
    found: list[str] = []
    for key, ops in sorted(_by_key(history).items()):
        found += _lost_writes(key, ops, healed)
    return _result("session-no-lost-write", found)


def _register_op(op: Operation) -> lin.Op | None:
    """The register operation ``op`` was; None for what cannot have had an effect or
    observed anything (a refused write, a read without an answer)."""
    if op.kind == "session-write":
        if op.outcome == "fail":
            return None
        result = lin.Result.OK if op.outcome == "ok" else lin.Result.UNKNOWN
        return lin.Op(lin.Kind.SET, op.start, op.end, result, op.value)
    if op.outcome != "ok":
        return None
    return lin.Op(lin.Kind.GET, op.start, op.end, lin.Result.OK, op.value)


def check_linearizable(history: History) -> InvariantResult:
    found: list[str] = []
    for key, ops in sorted(_by_key(history).items()):
        register = [r for r in map(_register_op, ops) if r is not None]
        try:
            verdict = lin.check(register, budget=LINEARIZABILITY_BUDGET)
        except RuntimeError as exc:
            found.append(f"key {key}: undecided ({exc}); spread the writers over more keys")
            continue
        if not verdict.linearizable:
            why = f": {verdict.why}" if verdict.why else ""
            found.append(f"key {key}: its {verdict.ops} operations are not linearizable{why}")
    return _result("session-linearizable", found)


def check_recovery(
    history: History, moments: Mapping[Fault, float], outcomes: tuple[FaultOutcome, ...]
) -> InvariantResult:
    bound = recovery_bound(history.run.profile)
    last = history_end(history)
    found: list[str] = []
    for outcome in outcomes:
        fault = outcome.fault
        at = moments[fault]
        if not math.isfinite(at) or covered_by_later(history, moments, fault):
            continue
        took = outcome.recovered_after
        if took is None and last - at < bound:
            continue  # the run ended before the bound ran out: nothing to hold it to
        if took is None or took > bound:
            said = "never" if took is None else f"after {took:.1f}s"
            found.append(
                f"{fault.kind} of {', '.join(fault.targets)} at {fault.start:.3f}: the "
                f"workloads recovered {said}, bound {bound:g}s ({history.run.profile})"
            )
    return _result("recovery-within-bound", found)


def check_heal_elections(history: History, outcomes: tuple[FaultOutcome, ...]) -> InvariantResult:
    found: list[str] = []
    for outcome in outcomes:
        fault = outcome.fault
        if fault.kind not in HEALED_CUTS or not outcome.elections:
            continue
        if not majority_kept_leader(history, fault):
            continue  # the majority lost its leader during the fault: its election is owed
        found.append(
            f"heal of {fault.kind} of {', '.join(fault.targets)} at {fault.end:.3f}: the "
            f"term rose by {outcome.elections} within {HEAL_WINDOW:g}s"
        )
    return _result("no-election-on-heal", found)


def check_history(history: History) -> Verdict:
    # The samples in time order, so the per-fault questions find their window by bisection.
    history = dataclasses.replace(
        history, leaders=tuple(sorted(history.leaders, key=lambda s: s.time))
    )
    streams = workloads(history)
    moments = recovery_moments(history)
    outcomes = tuple(
        fault_outcome(history, streams, moments, f)
        for f in sorted(history.faults, key=lambda f: f.start)
    )
    invariants = (
        _result("vip-single-holder", _sampled_single_holder(history, "vip")),
        check_singleton(history),
        check_lost_writes(history),
        check_linearizable(history),
        check_recovery(history, moments, outcomes),
        check_heal_elections(history, outcomes),
    )
    return Verdict(
        run=history.run,
        invariants=invariants,
        faults=outcomes,
        ok=all(i.ok for i in invariants),
    )
