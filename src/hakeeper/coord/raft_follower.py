"""What a Raft follower provably shares with its leader, so an append never cuts it.

PySyncObj's follower deletes every entry after ``prevLogIdx`` on each ``append_entries`` and
then appends the message's entries; Raft (§5.3) deletes only from the first entry that
*conflicts*. A heartbeat or batch sent from a lagging next-index (after a reset, or while a
large entry goes out in chunks) therefore cut entries the follower had applied already —
PySyncObj logs "state machine may have diverged" — and until the leader sent them again fewer
members held committed entries than the leader counted: a leader change in that window could
elect a member without them.

`shared_append` rewrites the message's starting point past what the follower provably holds
as the leader does, so PySyncObj's own handler truncates only from a real conflict:

- entries of the message that the follower holds with the same term (Log Matching: the same
  index and term is the same entry, with the same log before it);
- when all of them are held, the follower's further entries that are committed on it
  (Leader Completeness: every later leader holds them) or carry the leader's own term (only
  that leader writes in its term, so it holds them, and by Log Matching all before them).

The follower's answer then claims exactly that prefix, and its commit index, which PySyncObj
bounds by the log's end, never covers an entry it does not share with the leader. Entries it
cannot prove shared (an older term, not known committed) are still cut as PySyncObj cuts
them: Raft would keep them until a conflict, but with PySyncObj's commit bound a kept one
could be committed here without the leader holding it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: One log entry as PySyncObj keeps it: (command, index, term).
Entry = tuple[Any, int, int]


@dataclass(frozen=True, slots=True)
class Append:
    """Where an append starts (the entry before its first) and what it adds."""

    prev_index: int
    prev_term: int
    entries: Sequence[Entry]


def shared_append(
    log: Sequence[Entry], commit_index: int, leader_term: int, append: Append
) -> Append:
    """``append`` moved past the entries this follower provably shares with the leader.

    ``log`` is the follower's log (non-empty, contiguous indexes, terms never decreasing);
    an append whose starting point the follower does not hold is returned as it is, for
    PySyncObj to answer as before (it asks the leader to go back).
    """
    first, last = log[0][1], log[-1][1]

    def term_at(index: int) -> int:
        return int(log[index - first][2])

    if not first <= append.prev_index <= last or term_at(append.prev_index) != append.prev_term:
        return append
    held = 0
    for _, index, term in append.entries:
        if index > last or term_at(index) != term:
            break
        held += 1
    if held < len(append.entries):
        if held == 0:
            return append
        _, index, term = append.entries[held - 1]
        return Append(index, term, append.entries[held:])  # PySyncObj cuts from the conflict
    shared = append.entries[-1][1] if append.entries else append.prev_index
    # Terms never decrease along a log, so the entries of the leader's term are its tail.
    beyond = last if term_at(last) == leader_term else min(commit_index, last)
    end = max(shared, beyond)
    return Append(end, term_at(end), ())
