"""A small Knossos-style linearizability checker for one register with set, cas and get.

The search is Wing & Gong's with Lowe's memoisation (as in Knossos' ``linear`` and in
porcupine): walk the history's call/return events in time order; at a call, try to
linearize that operation now (if the model allows its observed result) and remember the
(linearized set, state) pair so no configuration is explored twice; at a return whose call
is not yet linearized, backtrack. The history is linearizable when every operation found a
place.

Operations whose outcome is unknown (timeout, dropped connection, ``SERVER_ERROR``) return
at infinity: they may take effect at any point after their call, or never (taking effect
after everything else is the same as never, as nothing observes it). Unknown gets observe
nothing and are dropped.

Values are unique per write, so a memcached ``cas`` with the unique token read by ``gets``
is modelled as compare-and-set on that value.

A history of sets and gets only (the nemesis's) needs no search: with unique values each get
names the set it read, and Gibbons and Korach showed such a register history is checked in
O(n log n). `check_by_zones` uses Anderson et al.'s form of it ("What consistency does your
key-value store actually provide?", HotDep 2010): the zone of a write and the reads of its
value runs from the earliest end to the latest start among them ("forward" when the end
comes first); the history is linearizable iff no two forward zones overlap and no backward
zone lies inside a forward one. A long history the search could not finish is decided.
"""

from __future__ import annotations

import bisect
import enum
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

ABSENT = None


class Kind(enum.Enum):
    SET = "set"
    CAS = "cas"
    GET = "get"


class Result(enum.Enum):
    OK = "ok"  # set stored / cas stored / get returned ``value``
    EXISTS = "exists"  # cas refused: another value is there
    NOT_FOUND = "not_found"  # cas refused: nothing there
    UNKNOWN = "unknown"  # no answer: may or may not have happened


@dataclass(frozen=True, slots=True)
class Op:
    """One client operation on one key. ``value``: what set/cas writes or what get read."""

    kind: Kind
    call: float
    ret: float
    result: Result
    value: str | None = None
    expected: str | None = None  # cas: the value the preceding gets returned

    @property
    def unknown(self) -> bool:
        return self.result is Result.UNKNOWN


@dataclass(frozen=True, slots=True)
class Verdict:
    linearizable: bool
    ops: int
    explored: int
    why: str = ""  # what cannot be ordered, where the check can say


def step(state: str | None, op: Op) -> tuple[bool, str | None]:
    """Whether ``op`` with its observed result may happen in ``state``, and the next state."""
    if op.kind is Kind.SET:
        return True, op.value
    if op.kind is Kind.GET:
        return state == op.value, state
    # cas
    if op.result is Result.OK:
        return (True, op.value) if state == op.expected else (False, state)
    if op.result is Result.EXISTS:
        return state is not ABSENT and state != op.expected, state
    if op.result is Result.NOT_FOUND:
        return state is ABSENT, state
    # unknown: it either found its expected value and wrote, or did nothing
    return True, op.value if state == op.expected else state


class _Entry:
    __slots__ = ("is_call", "match", "next", "op", "op_id", "prev", "time")

    def __init__(self, op_id: int, op: Op, is_call: bool, time: float) -> None:
        self.op_id = op_id
        self.op = op
        self.is_call = is_call
        self.time = time
        self.match: _Entry | None = None
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


def _build(ops: Sequence[Op]) -> _Entry:
    entries: list[_Entry] = []
    for op_id, op in enumerate(ops):
        call = _Entry(op_id, op, True, op.call)
        ret = _Entry(op_id, op, False, math.inf if op.unknown else op.ret)
        call.match = ret
        entries += [call, ret]
    # Returns sort before calls at the same instant: the stricter reading of a tie.
    entries.sort(key=lambda entry: (entry.time, entry.is_call))
    head = _Entry(-1, ops[0], False, -math.inf)
    previous = head
    for entry in entries:
        previous.next = entry
        entry.prev = previous
        previous = entry
    return head


def _lift(entry: _Entry) -> None:
    for node in (entry, entry.match):
        assert node is not None
        assert node.prev is not None
        node.prev.next = node.next
        if node.next is not None:
            node.next.prev = node.prev


def _unlift(entry: _Entry) -> None:
    for node in (entry.match, entry):
        assert node is not None
        assert node.prev is not None
        node.prev.next = node
        if node.next is not None:
            node.next.prev = node


def check(ops: Sequence[Op], initial: str | None = ABSENT, budget: int = 2_000_000) -> Verdict:
    """Check one key's history. Raises RuntimeError past ``budget`` search steps (only a
    history with cas searches: one of sets and gets goes by `check_by_zones`)."""
    history = [op for op in ops if not (op.kind is Kind.GET and op.unknown)]
    if not history:
        return Verdict(True, 0, 0)
    if all(op.kind is not Kind.CAS for op in history):
        return check_by_zones(history, initial)
    return check_by_search(history, initial, budget)


def check_by_search(ops: Sequence[Op], initial: str | None, budget: int) -> Verdict:
    """Wing & Gong's search (module docstring) over a history without unknown gets."""
    history = list(ops)
    if not history:
        return Verdict(True, 0, 0)
    head = _build(history)
    state = initial
    linearized = 0
    seen: set[tuple[int, str | None]] = set()
    calls: list[tuple[_Entry, str | None]] = []
    entry = head.next
    explored = 0
    while head.next is not None:
        explored += 1
        if explored > budget:
            raise RuntimeError(f"linearizability search exceeded {budget} steps")
        assert entry is not None
        if entry.is_call:
            allowed, new_state = step(state, entry.op)
            if allowed:
                new_linearized = linearized | (1 << entry.op_id)
                key = (new_linearized, new_state)
                if key not in seen:
                    seen.add(key)
                    calls.append((entry, state))
                    state = new_state
                    linearized = new_linearized
                    _lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
        else:
            if not calls:
                return Verdict(False, len(history), explored)
            top, state = calls.pop()
            linearized &= ~(1 << top.op_id)
            _unlift(top)
            entry = top.next
    return Verdict(True, len(history), explored)


@dataclass(frozen=True, slots=True)
class _Zone:
    low: float  # the earliest end among the write and its reads
    high: float  # the latest start among them
    value: str | None

    @property
    def forward(self) -> bool:
        return self.low < self.high

    def describe(self) -> str:
        if self.low == -math.inf:
            return f"nothing, as before any write (read as late as {self.high:.3f})"
        what = "nothing" if self.value is ABSENT else repr(self.value)
        return f"{what} (written or read by {self.low:.3f}, and from {self.high:.3f})"


def check_by_zones(ops: Sequence[Op], initial: str | None = ABSENT) -> Verdict:
    """Check one key's history of sets and gets (unique values) by its zones (module
    docstring). An unknown set ends at infinity; one whose value nobody read is dropped, as
    it may never have taken effect."""
    writes: dict[str | None, Op] = {}
    reads: dict[str | None, list[Op]] = {}
    for op in ops:
        if op.kind is Kind.CAS:
            raise ValueError("check_by_zones takes sets and gets only, not cas")
        if op.kind is Kind.SET:
            writes[op.value] = op
        elif not op.unknown:  # a get without an answer observed nothing
            reads.setdefault(op.value, []).append(op)
    if initial not in writes:
        # The value before the history: written before everything.
        writes[initial] = Op(Kind.SET, -math.inf, -math.inf, Result.OK, initial)
    zones: list[_Zone] = []
    for value, write in writes.items():
        readers = reads.get(value, [])
        if not readers and (write.unknown or write.call == -math.inf):
            continue  # may never have taken effect, or the unread value before the history
        end = math.inf if write.unknown else write.ret
        early = [read for read in readers if read.ret < write.call]
        if early:
            why = f"a read returned {value!r} at {early[0].ret:.3f}, before its write began"
            return Verdict(False, len(ops), len(zones), why)
        zones.append(
            _Zone(
                min([end, *(read.ret for read in readers)]),
                max([write.call, *(read.call for read in readers)]),
                value,
            )
        )
    ghosts = [value for value in reads if value not in writes]
    if ghosts:
        return Verdict(False, len(ops), len(zones), f"a read returned {ghosts[0]!r}, never written")
    forward = sorted((z for z in zones if z.forward), key=lambda z: z.low)
    for before, after in itertools.pairwise(forward):
        if after.low < before.high:
            why = f"neither can come first: {before.describe()}; {after.describe()}"
            return Verdict(False, len(ops), len(zones), why)
    lows = [z.low for z in forward]
    for zone in zones:
        if zone.forward:
            continue
        # Forward zones are disjoint now: only the last one starting before it can hold it.
        index = bisect.bisect_right(lows, zone.high) - 1
        if index >= 0 and forward[index].high >= zone.low:
            outer = forward[index]
            why = f"{zone.describe()} lies inside the time of {outer.describe()}"
            return Verdict(False, len(ops), len(zones), why)
    return Verdict(True, len(ops), len(zones))
