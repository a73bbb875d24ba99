"""The replicated record of the embedded Raft group's membership, and its checks.

`MemberRecord` is a second PySyncObj consumer beside the key space: every member applies
the same commands in the same order, so the committed voter list, its version, the addresses
retired for good, the one change in flight and the learners that caught up are identical on
all of them. PySyncObj's own membership entries change the voter list: `GuardedSyncObj` hands
each one to `apply_member_entry` as it applies, in log order. The protocol that uses it is
described in `hakeeper.coord.raft_membership`.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Any

from hakeeper.coord.base import Members
from hakeeper.coord.pysyncobj_compat import SyncObjConsumer, replicated
from hakeeper.coord.raft_peers import membership_fingerprint
from hakeeper.coord.raft_state import check_id, check_lease_id, fail, is_int

MAX_MEMBERS = 64  # voters in a peer list, learners and proposals remembered
MAX_ADDRESS_CHARS = 261  # "[" + 255-character host + "]:" + port


def check_address(value: object) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ADDRESS_CHARS:
        raise fail(f"member address {value!r} is not a host:port string")


def check_peers(value: object) -> None:
    if not isinstance(value, list | tuple) or not 0 < len(value) <= MAX_MEMBERS:
        raise fail(f"a peer list must hold 1 to {MAX_MEMBERS} addresses")
    for address in value:
        check_address(address)


class MemberRecord(SyncObjConsumer):  # type: ignore[misc]
    """The group's committed membership; empty until the first identify forms the group."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.voters: list[str] = []
        self.member_version = 0
        self.known_lists: dict[str, int] = {}  # fingerprint of each committed list -> version
        self.retired: list[str] = []
        self.pending: tuple[str, str] | None = None  # ("add"|"remove", address)
        self.pending_until = 0.0  # the proposer's wall-clock deadline for it
        self.caught_up: dict[str, int] = {}  # learner -> revision it had applied
        self.proposals: OrderedDict[str, str] = OrderedDict()  # request id -> verdict

    def _serialize(self) -> dict[str, Any]:
        data: dict[str, Any] = super()._serialize()
        return {k: v for k, v in data.items() if k != "lock"}

    def _deserialize(self, data: dict[str, Any]) -> None:
        with self.lock:
            super()._deserialize(data)

    @replicated  # type: ignore[untyped-decorator]
    def cmd_identify(self, fingerprint: str, peers: list[str], address: str) -> tuple[str, int]:
        """Check a starting node's peer list against the committed membership.

        The first identify forms the group with its list. Later, a list is accepted when it
        is any committed version of the group, or the version the change in flight (or the
        node's own addition) would commit; an address removed before is refused for good.
        Answers (verdict, version): "ok", "retired" or "unknown"."""
        check_id(fingerprint, "fingerprint")
        check_peers(peers)
        if address:
            check_address(address)
        with self.lock:
            if not self.voters:
                self._commit_voters(sorted(peers))
            if address and address in self.retired:
                return "retired", self.member_version
            if fingerprint in self.known_lists or fingerprint in self._next_lists(address):
                return "ok", self.member_version
            return "unknown", self.member_version

    @replicated  # type: ignore[untyped-decorator]
    def cmd_members(self) -> Members:
        with self.lock:
            return self.members()

    @replicated  # type: ignore[untyped-decorator]
    def cmd_member_propose(
        self, req_id: str, kind: str, address: str, version: int, until: float
    ) -> str:
        """Take the group's one membership-change slot for (kind, address) until the
        proposer's deadline ``until`` (wall clock), or say why not: "ok", "busy", "stale",
        "retired", "noop" (already so), "last" (last voter)."""
        check_id(req_id)
        check_address(address)
        if kind not in ("add", "remove") or not is_int(version):
            raise fail(f"membership change {kind!r} at version {version!r} is unknown")
        if not isinstance(until, float) or not math.isfinite(until):
            raise fail(f"membership change deadline {until!r} is not a time")
        with self.lock:
            if req_id in self.proposals:
                return self.proposals[req_id]
            if self.pending is not None:
                verdict = "busy"
            elif version != self.member_version:
                verdict = "stale"
            elif kind == "add" and address in self.retired:
                verdict = "retired"
            elif (address in self.voters) == (kind == "add"):
                verdict = "noop"
            elif kind == "remove" and len(self.voters) == 1:
                verdict = "last"
            else:
                self.pending, self.pending_until = (kind, address), until
                verdict = "ok"
            self.proposals[req_id] = verdict
            while len(self.proposals) > MAX_MEMBERS:
                del self.proposals[next(iter(self.proposals))]
            return verdict

    @replicated  # type: ignore[untyped-decorator]
    def cmd_member_abort(self, kind: str, address: str) -> bool:
        """Free the slot of a change whose membership entry was not committed."""
        with self.lock:
            if self.pending != (kind, address):
                return False
            self.pending = None
            return True

    @replicated  # type: ignore[untyped-decorator]
    def cmd_learner_caught_up(self, address: str, revision: int) -> None:
        check_address(address)
        check_lease_id(revision)
        with self.lock:
            self.caught_up.pop(address, None)
            self.caught_up[address] = revision
            while len(self.caught_up) > MAX_MEMBERS:
                del self.caught_up[next(iter(self.caught_up))]

    def apply_member_entry(self, kind: str, address: str) -> None:
        """PySyncObj applied one of its membership entries: the committed list follows it."""
        with self.lock:
            if not self.voters:
                return  # not formed: the first identify seeds the list
            voters = set(self.voters)
            if kind == "add":
                voters.add(address)
            elif kind == "rem":
                voters.discard(address)
                if address not in self.retired:
                    self.retired.append(address)
            else:
                return
            if self.pending is not None and self.pending[1] == address:
                self.pending = None
            self.caught_up.pop(address, None)
            if voters != set(self.voters):
                self._commit_voters(sorted(voters))

    def _commit_voters(self, voters: list[str]) -> None:
        self.voters = voters
        self.member_version += 1
        self.known_lists[membership_fingerprint(voters)] = self.member_version

    def _next_lists(self, address: str) -> set[str]:
        """Fingerprints of the lists a change in flight, or this node's own addition, makes."""
        after: list[set[str]] = []
        if self.pending is not None:
            kind, other = self.pending
            voters = set(self.voters)
            after.append(voters | {other} if kind == "add" else voters - {other})
        if address and address not in self.voters:
            after.append({*self.voters, address})
        return {membership_fingerprint(sorted(v)) for v in after}

    def members(self) -> Members:
        """The committed membership (call with the lock held, or from apply)."""
        return Members(
            voters=tuple(self.voters),
            version=self.member_version,
            retired=tuple(self.retired),
            pending=self.pending,
            pending_until=self.pending_until if self.pending is not None else None,
            caught_up=tuple(self.caught_up),
        )
