"""What a nemesis run saw: the one record format between the run and its checkers.

The run (`hakeeper lab nemesis`) writes a history as JSON lines, one record per line, the
first line the run's `RunInfo`. Every time is the system-wide monotonic clock in seconds
(``time.monotonic()``: one clock for every network namespace of the host, the same clock
the lab's services record their start/stop lines with, `hakeeper.lab.holders`).

The checkers read nothing else, so a history from a run on another machine, or one written
by hand in a test, is checked by the same code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, get_args

from hakeeper.errors import ConfigError
from hakeeper.lab.fence_agent import read_offs
from hakeeper.lab.loopback import Record as ServiceRecord
from hakeeper.lab.loopback import read_records

#: A run's directory: what the run writes, and what the checkers and the report read.
HISTORY_FILE = "history.jsonl"  # the records below, RunInfo first
SINGLETON_FILE = "singleton.records"  # the singleton's own start/stop lines
EVENTS_FILE = "events.jsonl"  # the cluster's event log at the end (`hakeeper events --json`)
HTML_FILE = "availability.html"  # the availability report of that event log

#: Every fault the nemesis injects. ``combined`` faults are recorded as one record per part
#: with the same ``group``.
FaultKind = Literal[
    "crash",  # a power cut of a node (every process SIGKILLed, cable pulled); undo: revive
    "freeze",  # SIGSTOP of a node's agent; undo: SIGCONT
    "isolate",  # one node's switch port down; undo: up
    "halves",  # the nodes cut into two groups that cannot reach each other; undo: heal
    "partition-controller",  # the controller's node isolated; undo: heal
    "kill-controller",  # SIGKILL of the controller's agent; undo: restart it
    "kill-raft-leader",  # SIGKILL of the Raft leader's agent; undo: restart it
    "kill-session-primary",  # SIGKILL of the session store's primary; undo: cluster restarts it
    "slow-disk",  # a node's writes delayed; undo: normal
]
OpKind = Literal["session-write", "session-read", "http-get"]
#: ``ok``: acknowledged (a write took effect, a read returned ``value``); ``fail``: certainly
#: not applied (refused before it was sent, or answered with an error); ``unknown``: sent and
#: no answer (a timeout, a connection lost): the write may or may not have taken effect.
Outcome = Literal["ok", "fail", "unknown"]
Watched = Literal["vip", "singleton"]


@dataclass(frozen=True, slots=True)
class RunInfo:
    seed: int
    duration: float  # seconds of faults asked for
    profile: str  # the lab's timing profile ("default" or "fast")
    nodes: tuple[str, ...]
    started: float  # monotonic clock at the first fault's schedule origin
    record: Literal["run"] = "run"


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation, from its invocation to its completion (or giving up)."""

    process: str  # the workload client, e.g. "sessions-2": one operation at a time each
    kind: OpKind
    key: str  # a session key; for http-get the URL path
    value: str | None  # written value; value read (None: not found); http-get: the node served
    start: float
    end: float
    outcome: Outcome
    error: str = ""
    #: Session operations: the store node that answered, from ``stats`` asked on the same
    #: connection right after (``n1 primary e7``, ``n2 replica e7 via n1``); "" unknown.
    served_by: str = ""
    record: Literal["op"] = "op"


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    targets: tuple[str, ...]  # nodes the fault acts on ("halves": the smaller side)
    start: float  # when it was injected
    end: float  # when it was undone (inf: never, the run ended first)
    group: int = 0  # faults injected together share a group number (> 0)
    record: Literal["fault"] = "fault"


@dataclass(frozen=True, slots=True)
class HolderSample:
    """Who held the VIP or ran the singleton at one moment, as seen from outside the nodes."""

    what: Watched
    time: float
    holders: tuple[str, ...]
    record: Literal["holders"] = "holders"


@dataclass(frozen=True, slots=True)
class LeaderSample:
    """The Raft leader and term one node reported at one moment (for elections per heal)."""

    node: str  # who was asked
    time: float
    leader: str | None
    term: int
    record: Literal["leader"] = "leader"


@dataclass(frozen=True, slots=True)
class History:
    run: RunInfo
    operations: tuple[Operation, ...] = ()
    faults: tuple[Fault, ...] = ()
    holders: tuple[HolderSample, ...] = ()
    leaders: tuple[LeaderSample, ...] = ()
    #: The singleton's own start/stop lines (read from its record file, not the history).
    singleton_records: tuple[ServiceRecord, ...] = ()
    #: (node, when its power was confirmed off) for every fence of the run (the lab fence
    #: agent's `FENCE_LOG`, copied into the run directory at the end).
    fenced: tuple[tuple[str, float], ...] = ()


Record = RunInfo | Operation | Fault | HolderSample | LeaderSample
_KINDS: dict[str, type[Record]] = {
    "run": RunInfo,
    "op": Operation,
    "fault": Fault,
    "holders": HolderSample,
    "leader": LeaderSample,
}


def dump_record(record: Record) -> str:
    """One JSON line (``inf`` written as the string "inf": JSON has no infinity)."""
    data = {k: ("inf" if v == float("inf") else v) for k, v in asdict(record).items()}
    return json.dumps(data, separators=(",", ":"))


def write_history(path: Path, records: Iterable[Record]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(dump_record(record) + "\n")


def _load(line: str, where: str) -> Record:
    try:
        data = json.loads(line)
        kind = _KINDS[data.pop("record")]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{where}: not a nemesis history record ({exc})") from exc
    for name in ("end",):
        if data.get(name) == "inf":
            data[name] = float("inf")
    for name in ("nodes", "targets", "holders"):
        if isinstance(data.get(name), list):
            data[name] = tuple(data[name])
    try:
        return kind(**data)
    except TypeError as exc:
        raise ConfigError(f"{where}: bad {kind.__name__} record ({exc})") from exc


def iter_records(path: Path) -> Iterator[Record]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                yield _load(line, f"{path}:{number}")


def read_history(
    path: Path,
    singleton_records: Iterable[ServiceRecord] = (),
    fenced: Iterable[tuple[str, float]] = (),
) -> History:
    """The history at ``path``; its first record must be the run's `RunInfo`."""
    records = list(iter_records(path))
    if not records or not isinstance(records[0], RunInfo):
        raise ConfigError(f"{path}: a nemesis history starts with its run record; rerun the run")
    return History(
        run=records[0],
        operations=tuple(r for r in records if isinstance(r, Operation)),
        faults=tuple(r for r in records if isinstance(r, Fault)),
        holders=tuple(r for r in records if isinstance(r, HolderSample)),
        leaders=tuple(r for r in records if isinstance(r, LeaderSample)),
        singleton_records=tuple(singleton_records),
        fenced=tuple(fenced),
    )


def read_run(run_dir: Path) -> History:
    """The history a run left in ``run_dir``, with its singleton's records and fences."""
    fenced = [(node, at) for node, offs in read_offs(run_dir).items() for at in offs]
    return read_history(run_dir / HISTORY_FILE, read_records(run_dir / SINGLETON_FILE), fenced)


FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
