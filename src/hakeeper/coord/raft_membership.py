"""Membership changes of the embedded Raft group: the protocol behind `RaftCoordinator`'s
`members`, `add_member` and `remove_member` (`hakeeper.coord.base.MembershipChanges`).

Membership changes (`hakeeper.coord.base.MembershipChanges`), on PySyncObj's single-server
changes (``dynamicMembershipChange``): the leader appends an ``add``/``rem`` entry and every
node switches to the new voter list when the entry reaches its log, not when it commits, as in
the Raft dissertation (section 4.1). From then the leader counts commits and candidates count
votes over the new list, so a 3→4 change needs 3 of 4 at once and never lets 2 decide. That is
safe only one change at a time: PySyncObj refuses a change until its leader has committed an
entry of its own term, but its check for a change still in flight is never armed (0.3.17), so
hakeeper holds the slot itself: `cmd_member_propose` takes it through the log before the
entry is proposed, and the apply of the entry (or `cmd_member_abort`) frees it. The
replicated record (`raft_member_record.MemberRecord`) follows the entries
as they apply, so the committed voter list is the one PySyncObj applied, never half a change.

Learner first: a new member starts with `join()`, not `start()`. It runs as a PySyncObj
read-only node — the leader streams it the log and snapshots, it never votes and is never
counted — writing its journal where it will vote from. Once a barrier it sent has been applied
locally (so it holds everything the leader had committed when the barrier was proposed) it
commits `cmd_learner_caught_up`; `add_member` waits for that before proposing the entry. When
the entry has applied, the learner reopens its journal as a voter. A removed address is retired
in the record; its old data cannot bring it back: the other members drop it from their node
list, and PySyncObj's transport refuses a connection from an address not in that list, so it
can neither vote nor ask for votes, and `verify_membership` names what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from hakeeper.coord.base import ChangeInProgress, Members
from hakeeper.coord.pysyncobj_compat import called_back, ignore_result
from hakeeper.coord.raft_member_record import MemberRecord
from hakeeper.coord.raft_peers import parse_peer
from hakeeper.errors import CoordError, EngineMismatch, NoQuorum
from hakeeper.model.timing import TimingProfile

log = logging.getLogger(__name__)

Submit = Callable[..., Awaitable[Any]]

ABANDON_GRACE = 30.0
"""Seconds past a change's deadline before another caller may free its slot: the clocks of
the callers' hosts may disagree by that much."""


class RaftMembership:
    """Grows and shrinks the group through ``submit`` (the coordinator's replicated-command
    call) and the PySyncObj instance ``sync()`` returns (it changes when a learner votes)."""

    def __init__(
        self,
        submit: Submit,
        sync: Callable[[], Any],
        record: Callable[[], MemberRecord],
        timing: TimingProfile,
        request_timeout: float,
    ) -> None:
        self._submit = submit
        self._sync = sync
        self._record = record
        self._timing = timing
        self._request_timeout = request_timeout

    async def members(self, timeout: float) -> Members:
        result: Members = await self._submit(self._record().cmd_members, timeout=timeout)
        return result

    async def change(self, kind: str, address: str, timeout: float) -> Members:
        parse_peer(address)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        before = await self.members(left(loop, deadline))
        verdict = await self._propose(kind, address, before.version, timeout)
        if verdict == "busy" and self._abandoned(before):
            # Its proposer died or gave up long ago: any entry it proposed has committed or
            # been dropped by now (the apply would have freed the slot), so free it.
            assert before.pending is not None
            log.warning("event=raft_member_change_abandoned kind=%s address=%s",
                        *before.pending)  # fmt: skip
            await self._submit(self._record().cmd_member_abort, *before.pending,
                               timeout=left(loop, deadline))  # fmt: skip
            before = await self.members(left(loop, deadline))
            verdict = await self._propose(kind, address, before.version, timeout)
        if verdict == "noop":
            return before
        if verdict != "ok":
            raise _refusal(verdict, kind, address, await self.members(left(loop, deadline)))
        log.info("event=raft_member_change kind=%s address=%s version=%d", kind, address,
                 before.version)  # fmt: skip
        try:
            if kind == "add":
                await self._await_caught_up(address, deadline)
            await self._propose_entry(kind, address, deadline)
            return await self.members(left(loop, deadline))
        except BaseException:
            # Free the slot unless the entry applied meanwhile (then the apply freed it).
            with contextlib.suppress(CoordError):
                await self._submit(self._record().cmd_member_abort, kind, address,
                                   timeout=self._request_timeout)  # fmt: skip
            raise

    async def _propose(self, kind: str, address: str, version: int, timeout: float) -> str:
        verdict: str = await self._submit(
            self._record().cmd_member_propose, uuid.uuid4().hex, kind, address, version,
            time.time() + timeout, timeout=timeout,
        )  # fmt: skip
        return verdict

    def _abandoned(self, members: Members) -> bool:
        """True when the change in flight is past its proposer's deadline by more than any
        entry it proposed can stay uncommitted, with room for clocks that disagree."""
        if members.pending_until is None:
            return False
        grace = ABANDON_GRACE + 4 * self._timing.election_max
        return time.time() > members.pending_until + grace

    async def _await_caught_up(self, address: str, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            members = await self.members(left(loop, deadline))
            if address in members.caught_up or address in members.voters:
                return
            if deadline - loop.time() <= self._timing.heartbeat:
                raise NoQuorum(
                    f"raft: the learner {address} did not report catching up in time: start it "
                    "with `hakeeper coord member --join` (fresh data directory, the group's "
                    "peers) and check its log, then add it again"
                )
            await asyncio.sleep(self._timing.heartbeat)

    async def _propose_entry(self, kind: str, address: str, deadline: float) -> None:
        """Propose PySyncObj's membership entry until it applied here, or the deadline."""
        loop = asyncio.get_running_loop()
        sync = self._sync()
        propose = sync.addNodeToCluster if kind == "add" else sync.removeNodeFromCluster
        while loop.time() < deadline:
            members = await self.members(left(loop, deadline))
            if (address in members.voters) == (kind == "add"):
                return
            with contextlib.suppress(TimeoutError):
                # Denied while the leader's own term has nothing committed yet, or while the
                # leader is the one leaving (it hands over first): ask again shortly.
                attempt = min(left(loop, deadline), 2 * self._timing.election_max)
                await called_back(propose, address, timeout=attempt)
            await asyncio.sleep(self._timing.heartbeat)
        raise NoQuorum(
            f"raft: the {kind} of {address} did not commit in time: check that a majority of "
            "the voters runs; the change slot is freed, run it again"
        )


def left(loop: asyncio.AbstractEventLoop, deadline: float) -> float:
    return max(0.0, deadline - loop.time())


def _refusal(verdict: str, kind: str, address: str, members: Members) -> CoordError:
    if verdict == "busy":
        return ChangeInProgress(
            f"raft: cannot {kind} {address}: the change {members.pending} is in flight and the "
            "group makes one membership change at a time; wait for it, then retry"
        )
    if verdict == "retired":
        return EngineMismatch(
            f"raft: {address} was removed from this group and never votes again: add the new "
            "machine under another address"
        )
    if verdict == "last":
        return CoordError(f"raft: {address} is the last voter: a group cannot remove it")
    return ChangeInProgress(
        f"raft: the membership changed while {kind} {address} was asked (now version "
        f"{members.version}): read members() and retry"
    )


class Handover:
    """Runs on PySyncObj's tick thread: a leader whose removal is in flight hands leadership
    to a caught-up voter (a leader cannot append its own removal; PySyncObj denies it)."""

    EVERY = 0.5  # seconds between attempts

    def __init__(self, sync: Any, record: MemberRecord, address: str) -> None:
        self._sync = sync
        self._record = record
        self._address = address
        self._last = 0.0

    def __call__(self) -> None:
        if self._record.pending != ("remove", self._address) or not self._sync._isLeader():
            return
        now = time.monotonic()
        if now - self._last >= self.EVERY:
            self._last = now
            log.info("event=raft_leader_hand_over reason=removal address=%s", self._address)
            self._sync.transferLeadership(callback=ignore_result)
