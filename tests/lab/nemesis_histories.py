"""A hand-made nemesis history that passes every check, for the checker and report tests to
break one thing at a time (shared by tests/lab and tests/cli).

A 60 s ``fast`` run on n1..n3: n1 crashes at 10 (revived at 30), n2 is isolated from 35 to
45; HTTP fails for 2 s after the crash; session writes of unique values on two keys, each
read back, and a final read of each key at 62 after everything was healed; n3 leads at term
2 throughout (the isolated n2's own term climbs, as it would without pre-vote); the VIP and
the singleton move from n1 to n2 after the crash.
"""

from __future__ import annotations

import dataclasses

from hakeeper.lab.loopback import Record as ServiceRecord
from hakeeper.lab.nemesis_history import (
    Fault,
    History,
    HolderSample,
    LeaderSample,
    Operation,
    RunInfo,
)

RUN = RunInfo(seed=7, duration=60.0, profile="fast", nodes=("n1", "n2", "n3"), started=0.0)
CRASH = Fault("crash", ("n1",), 10.0, 30.0, group=1)
ISOLATE = Fault("isolate", ("n2",), 35.0, 45.0, group=2)
KEYS = ("k1", "k2")
FINAL_READ_AT = 62.0


def http_ops() -> list[Operation]:
    ops = []
    for tick in range(120):
        start = tick * 0.5
        failed = 10.0 <= start < 12.0
        ops.append(
            Operation(
                "http-1",
                "http-get",
                "/",
                None if failed else "n2",
                start,
                start + 0.1,
                "fail" if failed else "ok",
                "connection refused" if failed else "",
            )
        )
    return ops


def session_ops() -> list[Operation]:
    ops = []
    for number, key in enumerate(KEYS):
        process = f"sessions-{number + 1}"
        for tick in range(60):
            start = tick + 0.1 * number
            value = f"{key}-v{tick}"
            ops.append(Operation(process, "session-write", key, value, start, start + 0.2, "ok"))
            ops.append(
                Operation(process, "session-read", key, value, start + 0.3, start + 0.4, "ok")
            )
        last = f"{key}-v59"
        ops.append(
            Operation(process, "session-read", key, last, FINAL_READ_AT, FINAL_READ_AT + 0.1, "ok")
        )
    return ops


def holder_samples() -> list[HolderSample]:
    samples = []
    for second in range(61):
        holder = ("n1",) if second < 10 else () if second < 12 else ("n2",)
        samples.append(HolderSample("vip", float(second), holder))
        samples.append(HolderSample("singleton", float(second) + 0.5, holder))
    return samples


def leader_samples() -> list[LeaderSample]:
    samples = []
    for second in range(61):
        for node in ("n2", "n3"):
            isolated = node == "n2" and 35 <= second <= 45
            term = 2 + (second - 34) if isolated else 2
            samples.append(LeaderSample(node, float(second), None if isolated else "n3", term))
    return samples


SINGLETON_RECORDS = (
    ServiceRecord("start", "singleton", "n1", 0.5, 100),  # killed by the crash: no stop line
    ServiceRecord("start", "singleton", "n2", 11.5, 200),
    ServiceRecord("stop", "singleton", "n2", 61.0, 200),
)


def clean_history() -> History:
    return History(
        run=RUN,
        operations=tuple(sorted(http_ops() + session_ops(), key=lambda op: op.start)),
        faults=(CRASH, ISOLATE),
        holders=tuple(holder_samples()),
        leaders=tuple(leader_samples()),
        singleton_records=SINGLETON_RECORDS,
    )


def http_failing(history: History, start: float, end: float) -> tuple[Operation, ...]:
    """The history's operations with every HTTP GET started in [start, end) failed."""
    return tuple(
        dataclasses.replace(op, outcome="fail")
        if op.kind == "http-get" and start <= op.start < end
        else op
        for op in history.operations
    )
