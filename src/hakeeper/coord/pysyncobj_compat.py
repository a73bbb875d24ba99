"""PySyncObj, imported once, with its process-wide side effect undone and its apply guarded.

``pysyncobj.tcp_connection`` imports ``pysyncobj/win_inet_pton.py``, which replaces
``socket.inet_ntop`` with a Windows-only version on every platform (its
``socket.inet_ntop = inet_ntop`` sits outside the ``os.name == 'nt'`` check). Any code in the
same process that formats an address afterwards (pyroute2 in the ``vip`` agent, for one)
then fails. Everything in hakeeper imports PySyncObj through this module.

PySyncObj retries an entry whose apply raised on every tick, forever: one malformed entry
would wedge every member at the same index. `GuardedSyncObj` applies such an entry as a
no-op instead, logs why, and answers its submitter with `Skipped`. Every member meets the same
entry with the same code, so every member skips it alike and the replicas stay identical.

PySyncObj's follower cuts its log after every append's starting point; `GuardedSyncObj`
first moves that point past what it provably shares with the leader
(`hakeeper.coord.raft_follower`), so only a real conflict is cut, never an applied entry.

PySyncObj's membership entries (``dynamicMembershipChange``) change its node list and apply
as no-ops to the state machine; `GuardedSyncObj` also hands each one, in log order, to its
``on_member_entry`` so that the replicated record of the voter list follows the log.

`GuardedSyncObj` also runs pre-vote (`hakeeper.coord.raft_prevote`) before each election it
starts, so a member that cannot win a majority never raises its term.
"""

from __future__ import annotations

import _socket
import asyncio
import contextlib
import logging
import math
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, SyncObjConsumer, replicated
from pysyncobj import pickle as pysyncobj_pickle
from pysyncobj.dns_resolver import globalDnsResolver
from pysyncobj.monotonic import monotonic as raft_clock
from pysyncobj.poller import POLL_EVENT_TYPE
from pysyncobj.syncobj import _RAFT_STATE, SyncObjExceptionWrongVer
from pysyncobj.tcp_connection import CONNECTION_STATE, set_keepalive
from pysyncobj.transport import TCPTransport

from hakeeper.coord.raft_follower import Append, shared_append
from hakeeper.coord.raft_prevote import (
    PRE_VOTE,
    PRE_VOTE_RESPONSE,
    PRE_VOTE_WIRE,
    LogPosition,
    PreVoteRound,
    TermSeen,
    VoterView,
    grants_pre_vote,
    peer_answers_pre_votes,
)

socket.inet_ntop = _socket.inet_ntop

MEMBERSHIP_ENTRY = b"\x02"  # PySyncObj's _COMMAND_TYPE.MEMBERSHIP, the entry's first byte

log = logging.getLogger(__name__)

__all__ = [
    "CONNECTION_STATE",
    "FAIL_REASON",
    "POLL_EVENT_TYPE",
    "GuardedSyncObj",
    "Skipped",
    "SyncObj",
    "SyncObjConf",
    "SyncObjConsumer",
    "TCPTransport",
    "called_back",
    "globalDnsResolver",
    "ignore_result",
    "replicated",
    "set_keepalive",
]


@dataclass(frozen=True, slots=True)
class Skipped:
    """What a submitter receives for an entry that was applied as a no-op, and why."""

    reason: str


async def called_back(start: Callable[..., None], *args: Any, timeout: float) -> tuple[Any, int]:
    """Call ``start(*args, callback=...)`` and wait, at most ``timeout``, for PySyncObj to
    call back from its thread; return its (result, error). TimeoutError otherwise."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[tuple[Any, int]] = loop.create_future()

    def resolve(result: Any, error: int) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closing: nobody waits
            loop.call_soon_threadsafe(_settle, done, (result, error))

    start(*args, callback=resolve)
    async with asyncio.timeout(timeout):
        return await done


def _settle(future: asyncio.Future[tuple[Any, int]], value: tuple[Any, int]) -> None:
    if not future.done():  # a late second answer after a timeout is dropped
        future.set_result(value)


def ignore_result(_result: Any, _error: int) -> None:
    """Callback for fire-and-forget commands: the next tick decides again if needed."""


@dataclass(slots=True)
class _PreVoteState:
    """This member's pre-vote bookkeeping (one object, so SyncObj's snapshots never see it)."""

    asking: PreVoteRound | None = None
    won_term: int | None = None  # the election to this term was earned: let PySyncObj run it
    # When the last append from a leader came, on PySyncObj's clock (CLOCK_MONOTONIC_RAW, whose
    # origin differs from time.monotonic's: its deadlines are compared with it only).
    leader_heard_at: float | None = None
    seen: TermSeen = field(default_factory=lambda: TermSeen(0, None))  # the last logged


class GuardedSyncObj(SyncObj):  # type: ignore[misc]
    """`SyncObj` whose apply of one log entry never raises, and which pre-votes."""

    skipped = 0  # entries this member applied as no-ops (diagnostics)
    # PySyncObj's private state that pre-vote reads and moves (set by SyncObj.__init__).
    _SyncObj__raftElectionDeadline: float
    _SyncObj__transferInProgress: bool

    def __init__(
        self, *args: Any, on_member_entry: Callable[[str, str], None] | None = None, **kw: Any
    ) -> None:
        # Called with ("add" | "rem", address) for each membership entry applied, in log
        # order. Set before SyncObj.__init__, which counts every attribute that exists by
        # then as its own: one set later would be pickled into each snapshot.
        self.on_member_entry = on_member_entry
        self._pre = _PreVoteState()
        super().__init__(*args, **kw)

    # SyncObj calls ``self.__doApplyCommand``, which Python names ``_SyncObj__doApplyCommand``;
    # defining that name here is how a subclass wraps it.
    def _SyncObj__doApplyCommand(self, command: Any) -> Any:
        try:
            result = SyncObj._SyncObj__doApplyCommand(self, command)
            if command[:1] == MEMBERSHIP_ENTRY and self.on_member_entry is not None:
                kind, address = pysyncobj_pickle.loads(command[1:])[:2]
                self.on_member_entry(str(kind), str(address))
            return result
        except SyncObjExceptionWrongVer:
            raise  # PySyncObj's own upgrade protocol (unused by hakeeper): it logs and waits
        except Exception as exc:  # noqa: BLE001 - any failure of one entry is that entry's
            reason = f"{type(exc).__name__}: {exc}"[:300]
            self.skipped += 1
            log.error(
                "event=raft_entry_skipped reason=%r bytes=%d (applied as a no-op on every "
                "member; the submitter gets an error)",
                reason,
                len(command) if isinstance(command, bytes | bytearray) else -1,
            )
            return Skipped(reason)

    # The transport's callback is ``self.__onMessageReceived``, bound when SyncObj starts:
    # defined here, this is the one it calls.
    def _SyncObj__onMessageReceived(self, node: Any, message: Any) -> Any:
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == PRE_VOTE:
            return self._answer_pre_vote(node, message)
        if kind == PRE_VOTE_RESPONSE:
            return self._count_pre_vote(node, message)
        if kind == "append_entries" and message.get("term", -1) >= self._getTerm():
            self._pre.leader_heard_at = raft_clock()
            self._pre.asking = self._pre.won_term = None  # a leader is there: no election
        if (
            isinstance(message, dict)
            and message.get("type") == "append_entries"
            and "prevLogIdx" in message
            and "transmission" not in message
            and message.get("term", -1) >= self._getTerm()
        ):
            message = self._shared(message)
        return SyncObj._SyncObj__onMessageReceived(self, node, message)

    def _shared(self, message: dict[str, Any]) -> dict[str, Any]:
        log_ = self._SyncObj__raftLog
        if len(log_) == 0:
            return message
        asked = Append(message["prevLogIdx"], message["prevLogTerm"], message.get("entries", []))
        found = shared_append(log_, self._SyncObj__raftCommitIndex, message["term"], asked)
        if found is asked:
            return message
        return {
            **message,
            "prevLogIdx": found.prev_index,
            "prevLogTerm": found.prev_term,
            "entries": list(found.entries),
        }

    # --- pre-vote (hakeeper.coord.raft_prevote) -------------------------------------------

    def _onTick(self, timeToWait: float = 0.0) -> Any:
        """Ask a pre-vote where PySyncObj would start an election; let PySyncObj's election
        through only once a round is won (or for a leadership transfer the leader asked)."""
        self._maybe_pre_vote()
        # PySyncObj reads the clock again for its own election check, after its journal's
        # once-a-second flush: a deadline that passes in between (a slow flush, a SIGSTOP)
        # would start an election no pre-vote earned, and a healed member's higher term
        # would then depose the leader. The deadline is held out of its reach for the tick
        # and put back unless the tick moved it (a heartbeat, a vote, a transfer).
        held = None if self._election_earned() else self._SyncObj__raftElectionDeadline
        if held is not None:
            self._SyncObj__raftElectionDeadline = math.inf
        try:
            return SyncObj._onTick(self, timeToWait)
        finally:
            if held is not None and self._SyncObj__raftElectionDeadline == math.inf:
                self._SyncObj__raftElectionDeadline = held
            self._log_term_and_leader()

    def _election_earned(self) -> bool:
        """A pre-vote was won for the next term, or the leader asked for this election."""
        won = self._pre.won_term
        return self._SyncObj__transferInProgress or (won is not None and won > self._getTerm())

    def _log_term_and_leader(self) -> None:
        """One ``event=raft_term`` line whenever this member's term or leader changes, so
        elections can be counted from its log (`raft_prevote.term_seen_in` reads it back)."""
        leader = self._getLeader()
        seen = TermSeen(self._getTerm(), None if leader is None else str(leader.address))
        if seen != self._pre.seen:
            self._pre.seen = seen
            log.info("%s", seen.log_text())

    def _maybe_pre_vote(self) -> None:
        if self._pre.won_term is not None:
            if self._pre.won_term > self._getTerm():
                return  # earned: PySyncObj's election starts on this tick (or when connected)
            self._pre.won_term = None  # held (or overtaken): the next one asks again
        if (
            self.selfNode is None
            or self._isLeader()
            or self._SyncObj__transferInProgress
            or self._SyncObj__raftElectionDeadline >= raft_clock()
            or not self._SyncObj__connectedToAnyone()
        ):
            return
        # Postpone PySyncObj's election by one randomised timeout; a won round brings it on.
        self._SyncObj__raftElectionDeadline = raft_clock() + self._SyncObj__generateRaftTimeout()
        # The leader stays as last known (PySyncObj clears it when a real election starts):
        # under load a heartbeat comes late, the others still hear the leader and refuse,
        # and clearing it would fail this member's commands in flight for nothing.
        others = list(self.otherNodes)
        asking = PreVoteRound(self._getTerm() + 1, len(others) + 1, {self.selfNode.id})
        self._pre.asking = asking
        last = self._last_position()
        for node in others:
            wire = self._peer_wire(node)
            if peer_answers_pre_votes(wire):
                self._SyncObj__transport.send(node, {
                    "type": PRE_VOTE, "term": asking.term,
                    "last_log_index": last.index, "last_log_term": last.term,
                })  # fmt: skip
            elif wire is not None:
                asking.grant(node.id)  # an older release: its real vote decides
        log.debug(
            "event=raft_pre_vote term=%d last_index=%d last_term=%d granted_at_start=%d "
            "needed=%d", asking.term, last.index, last.term, len(asking.granted),
            asking.voters // 2 + 1,
        )  # fmt: skip
        self._check_pre_vote_won()

    def _peer_wire(self, node: Any) -> int | None:
        """The Raft peer-wire version of the connected link to ``node``; None if none."""
        if not self.isNodeConnected(node):
            return None
        peer_wire = getattr(self._SyncObj__transport, "peer_wire", None)
        # A transport without versions (PySyncObj's own, in tests) speaks this release.
        return peer_wire(node) if peer_wire is not None else PRE_VOTE_WIRE

    def _last_position(self) -> LogPosition:
        return LogPosition(self._SyncObj__getCurrentLogIndex(), self._SyncObj__getCurrentLogTerm())

    def _answer_pre_vote(self, node: Any, message: dict[str, Any]) -> None:
        if self.selfNode is None:
            return  # a read-only node has no vote
        heard = self._pre.leader_heard_at
        voter = VoterView(
            term=self._getTerm(),
            last=self._last_position(),
            is_leader=self._isLeader(),
            heard_leader_ago=None if heard is None else raft_clock() - heard,
            election_timeout=self.conf.raftMinTimeout,
        )
        try:
            term = int(message["term"])
            asker = LogPosition(int(message["last_log_index"]), int(message["last_log_term"]))
        except (KeyError, TypeError, ValueError):
            log.warning("event=raft_pre_vote_malformed peer=%s", getattr(node, "id", node))
            return
        granted = grants_pre_vote(voter, term, asker)
        if granted:
            self._stand_aside(term)
        self._SyncObj__transport.send(node, {
            "type": PRE_VOTE_RESPONSE, "term": term, "granted": granted,
            "voter_term": voter.term,
        })  # fmt: skip

    def _stand_aside(self, term: int) -> None:
        """Having said yes to another member's pre-vote for ``term``, wait one randomised
        timeout before asking for one, as PySyncObj does after a real vote; and drop a
        round of this member's own for that term. Two members whose deadlines passed
        together otherwise both won (the request that woke one found its own deadline
        gone too), both stood in the real election and split it: a second election,
        0.15-0.3 s more in `fast`, in about 4 % of the VIP benchmark's elections."""
        self._SyncObj__raftElectionDeadline = raft_clock() + self._SyncObj__generateRaftTimeout()
        asking = self._pre.asking
        if asking is not None and asking.term <= term:
            self._pre.asking = None

    def _count_pre_vote(self, node: Any, message: dict[str, Any]) -> None:
        asking = self._pre.asking
        if asking is None:
            return  # not asking (any more): a late answer
        voter_term = message.get("voter_term")
        if isinstance(voter_term, int) and voter_term > self._getTerm() and not self._isLeader():
            # Behind on terms: take the voter's, as Raft does for any higher term, so that
            # this member's next round asks for a term the others can grant.
            self._SyncObj__setCurrentTerm(voter_term, None)
            self._SyncObj__setState(_RAFT_STATE.FOLLOWER)
            self._pre.asking = None
            return
        if message.get("term") != asking.term or asking.term != self._getTerm() + 1:
            return  # an answer to an earlier round
        if message.get("granted") is True:
            asking.grant(node.id)
            self._check_pre_vote_won()

    def _check_pre_vote_won(self) -> None:
        asking = self._pre.asking
        if asking is None or not asking.won:
            return
        log.info("event=raft_pre_vote_won term=%d granted=%d", asking.term, len(asking.granted))
        self._pre.asking = None
        self._pre.won_term = asking.term
        self._SyncObj__raftElectionDeadline = 0.0  # PySyncObj starts the real election now
