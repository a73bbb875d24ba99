"""The embedded coordination backend: etcd's contract on Raft (PySyncObj), in-process.

A *member* (``self_address`` set) votes and stores the log under ``data_dir``; a *client*
(``self_address=None``) is a PySyncObj read-only node: it receives the committed log from the
leader and forwards its commands, so the CLI and tests run the same code as the agent without
adding a voter.

Every command goes through the Raft log, reads included, so every answer is linearizable.
A command is retried until its deadline when the leader changes or does not answer; each
carries a request id and the state machine answers a repeated id from its cache, so a retried
write applies once. PySyncObj's untyped camelCase API stays inside this module.

A member also grows and shrinks the group (`hakeeper.coord.base.MembershipChanges`, built in
`hakeeper.coord.raft_membership`); a new member starts with `join()`, as a learner.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from hakeeper.config.secret_file import SecretFile
from hakeeper.coord.base import (
    KV,
    Cmp,
    CoordinatorContext,
    Delete,
    Get,
    Lease,
    Members,
    Op,
    Put,
    TxnResult,
    WatchEvent,
)
from hakeeper.coord.pysyncobj_compat import (
    FAIL_REASON,
    GuardedSyncObj,
    Skipped,
    called_back,
    ignore_result,
)
from hakeeper.coord.raft_data_dir import open_data_dir
from hakeeper.coord.raft_member_record import MemberRecord
from hakeeper.coord.raft_membership import Handover, RaftMembership, left
from hakeeper.coord.raft_peers import (
    member_address,
    membership_fingerprint,
    parse_peer,
    raft_peers,
)
from hakeeper.coord.raft_state import (
    KVStateMachine,
    check_lease_id,
    check_ttl,
    check_txn,
    cmp_wire,
    op_wire,
)
from hakeeper.coord.raft_sync import sync_conf
from hakeeper.coord.raft_transport import AuthTransport
from hakeeper.errors import (
    Compacted,
    ConfigError,
    CoordError,
    EngineMismatch,
    LeaseExpired,
    NoQuorum,
    TTLTooShort,
    Unreachable,
)
from hakeeper.model.timing import PROFILES, TimingProfile

log = logging.getLogger(__name__)

_RETRYABLE = {
    FAIL_REASON.QUEUE_FULL,
    FAIL_REASON.MISSING_LEADER,
    FAIL_REASON.DISCARDED,
    FAIL_REASON.NOT_LEADER,
    FAIL_REASON.LEADER_CHANGED,
}


class RaftCoordinator:
    """`hakeeper.coord.base.Coordinator` on an embedded Raft group."""

    #: Members and clients prove the cluster secret to each other (`CoordinatorBackend`).
    needs_cluster_secret: ClassVar[bool] = True

    def __init__(
        self,
        peers: Sequence[str],
        *,
        self_address: str | None = None,
        data_dir: Path | None = None,
        secret_file: Path | None = None,
        timing: TimingProfile = PROFILES["default"],
        request_timeout: float = 5.0,
    ) -> None:
        self._peers = [p.strip() for p in peers]
        self._self = self_address
        self._data_dir = data_dir
        self._timing = timing
        self._request_timeout = request_timeout
        self._validate()
        if secret_file is None:
            raise ConfigError(
                "raft: no cluster secret file given: every member and client proves the "
                "cluster secret to its peers. Write one with `hakeeper init`, or copy the "
                "secret file of a node of this cluster (mode 0600) and name it with "
                "[coordination] secret_file or --secret-file"
            )
        # Read at construction so that a missing or open secret file stops start-up; the
        # transport re-reads it at every handshake (rotation).
        self._secret_file = SecretFile(secret_file)
        self._state = KVStateMachine()
        self._record = MemberRecord()
        self._sync: Any = None
        self._membership = RaftMembership(
            self._submit, lambda: self._sync, lambda: self._record, timing, request_timeout
        )
        self._ticker: asyncio.Task[None] | None = None
        self._closed = False
        # The Raft leader as last seen, and since when (local clock): during an election no
        # renewal can apply, so silence before the current leader took office proves nothing,
        # except the silence of the leader that fell (`lease_renewed_ago`).
        self._leader: Any = None
        self._leader_since = time.monotonic()
        self._fallen: str | None = None

    def _validate(self) -> None:
        if not self._peers:
            raise ConfigError("raft: the peer list is empty: list every member as host:port")
        for peer in self._peers:
            parse_peer(peer)
        dupes = sorted({p for p in self._peers if self._peers.count(p) > 1})
        if dupes:
            raise ConfigError(f"raft: peers listed twice: {', '.join(dupes)}")
        if self._self is not None:
            if self._self not in self._peers:
                raise ConfigError(
                    f"raft: this member's address {self._self} is not in the peer list "
                    f"{self._peers}: add it, or fix the address"
                )
            if self._data_dir is None:
                raise ConfigError(
                    "raft: a voting member needs a data_dir: Raft must remember its log and "
                    "votes across restarts"
                )

    # --- lifecycle ------------------------------------------------------------------------

    @classmethod
    async def open(
        cls, peers: Sequence[str], *, ready_timeout: float = 15.0, **options: Any
    ) -> RaftCoordinator:
        """Start and wait until the group has committed this member's view of membership."""
        coord = cls(peers, **options)
        await coord.start()
        try:
            await coord.verify_membership(ready_timeout)
        except BaseException:
            await coord.close()
            raise
        return coord

    @classmethod
    async def open_for(cls, context: CoordinatorContext) -> RaftCoordinator:
        """A voting member for ``context.node`` (its log under ``state_dir``), else a client
        that waits up to ``ready_timeout`` for the group; peers prove the cluster secret."""
        spec = context.spec
        peers = raft_peers(spec)
        secret_file = Path(spec.coordination.secret_file)
        if context.node is None:
            return await cls.open(
                peers,
                timing=context.spec.timing,
                secret_file=secret_file,
                ready_timeout=context.ready_timeout,
            )
        me = spec.node(context.node)
        if me is None:
            known = ", ".join(n.name for n in spec.nodes)
            raise ConfigError(f"node {context.node!r} is not in the cluster file (nodes: {known})")
        if context.state_dir is None:
            raise ConfigError("a raft member needs a state directory for its log (--state-dir)")
        coord = cls(
            peers,
            self_address=member_address(me),
            data_dir=context.state_dir / "raft",
            secret_file=secret_file,
            timing=context.spec.timing,
        )
        if not context.join:
            await coord.start()
            return coord
        try:
            await coord.join(context.join_timeout)
        except BaseException:
            await coord.close()
            raise
        return coord

    async def start(self) -> None:
        """Start the Raft thread (and, on a member, the lease-expiry ticker). Returns at once."""
        self._sync = self._make_sync(self._self, [p for p in self._peers if p != self._self])
        if self._self is not None:
            self._ticker = asyncio.create_task(self._expire_leases(), name="raft-lease-expiry")

    async def join(self, timeout: float = 120.0) -> None:
        """Start a new member as a learner and return once the group has made it a voter.

        The learner receives the log without voting, reports when it has caught up, and
        waits for `add_member` (run anywhere) to commit its addition; then it reopens its
        journal as a voter. Raises EngineMismatch for a retired address, NoQuorum or
        Unreachable when it was not made a voter within ``timeout``."""
        if self._self is None or self._data_dir is None:
            raise ConfigError("raft: only a member with an address and a data_dir can join")
        address = self._self
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._sync = self._make_sync(None, [p for p in self._peers if p != address])
        await self.verify_membership(timeout)
        reported = False
        while True:
            revision = await self._submit(self._state.cmd_barrier, timeout=left(loop, deadline))
            # The barrier has applied here: this learner holds everything committed before it.
            with self._record.lock:
                members = self._record.members()
            if address in members.voters:
                break
            if not reported:
                await self._submit(self._record.cmd_learner_caught_up, address, revision,
                                   timeout=left(loop, deadline))  # fmt: skip
                log.info("event=raft_learner_caught_up address=%s revision=%d", address, revision)
                reported = True
            await asyncio.sleep(self._timing.heartbeat)
        learner = self._sync
        self._sync = None
        await asyncio.to_thread(learner.destroy_synchronous)
        # The voter replays the journal the learner wrote into fresh state machines.
        self._state = KVStateMachine()
        self._record = MemberRecord()
        self._sync = self._make_sync(address, [v for v in members.voters if v != address])
        self._ticker = asyncio.create_task(self._expire_leases(), name="raft-lease-expiry")
        log.info("event=raft_learner_promoted address=%s version=%d", address, members.version)

    def _make_sync(self, self_node: str | None, others: list[str]) -> Any:
        journal = dump = None
        if self._data_dir is not None:
            files = open_data_dir(self._data_dir)
            journal, dump = str(files.journal), str(files.dump)
        learner = self_node is None and self._self is not None
        conf = sync_conf(self._timing, journal, dump, bind=self_node, learner=learner)
        # No `password`: PySyncObj's own Fernet layer would parse frames before checking them;
        # AuthTransport authenticates each peer, then each frame, before anything is unpickled.
        sync = GuardedSyncObj(
            self_node,
            others,
            conf,
            consumers=[self._state, self._record],
            transportClass=functools.partial(AuthTransport, secret_file=self._secret_file),
            on_member_entry=self._record.apply_member_entry,
        )
        if self_node is not None:
            sync.addOnTickCallback(Handover(sync, self._record, self_node))
        return sync

    async def verify_membership(self, timeout: float) -> None:
        """Check this node's peer list against the group's committed membership.

        Accepted: any committed version of the voter list, or the one the change in flight
        makes. Refused (EngineMismatch): a retired address, or a list of another group."""
        mine = membership_fingerprint(self._peers)
        try:
            verdict, version = await self._submit(
                self._record.cmd_identify, mine, list(self._peers), self._self or "",
                timeout=timeout,
            )  # fmt: skip
        except (NoQuorum, Unreachable):
            if self._self is None or self._sync is None or not self._sync.selfNode:
                raise
            # A removed member is cut off by the others, so its own log cannot answer:
            # ask the group as a client would, to tell "retired" from "no majority".
            verdict, version = await self._probe_identity(mine, timeout)
        if verdict == "retired":
            raise EngineMismatch(
                f"raft: {self._self} was removed from this group (membership version "
                f"{version}) and a removed address never votes again: stop this member; to "
                f"bring the machine back, delete its data directory {self._data_dir} and "
                "join it under a new address (`hakeeper coord member --join`, then add_member)"
            )
        if verdict != "ok":
            raise EngineMismatch(
                f"raft: this node's peer list {sorted(self._peers)} (fingerprint {mine}) "
                "disagrees with every version of the group's committed membership (now "
                f"version {version}): give this node the peers of the group it belongs to"
            )

    async def is_retired(self, timeout: float = 10.0) -> bool:
        if self._self is None:
            return False
        try:
            verdict, _ = await self._probe_identity(membership_fingerprint(self._peers), timeout)
        except CoordError as exc:
            log.info("event=raft_retired_check answer=none error=%r", str(exc))
            return False
        return verdict == "retired"

    async def _probe_identity(self, fingerprint: str, timeout: float) -> tuple[str, int]:
        # The others only: this member, cut off and campaigning, answers nothing useful.
        probe = RaftCoordinator(
            [p for p in self._peers if p != self._self] or self._peers,
            secret_file=self._secret_file.path,
            timing=self._timing,
            request_timeout=self._request_timeout,
        )
        await probe.start()
        try:
            answer: tuple[str, int] = await probe._submit(
                probe._record.cmd_identify, fingerprint, list(self._peers), self._self,
                timeout=timeout,
            )  # fmt: skip
            return answer
        finally:
            await probe.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._sync is not None:
            await asyncio.to_thread(self._sync.destroy_synchronous)

    async def __aenter__(self) -> RaftCoordinator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- the contract ---------------------------------------------------------------------

    @property
    def backend(self) -> str:
        return "raft"

    @property
    def min_ttl(self) -> float:
        return self._timing.min_lease_ttl

    @property
    def address(self) -> str | None:
        """This member's own address; None for a non-voting client."""
        return self._self

    def consensus_leader(self) -> str | None:
        """Address of the Raft leader as this node last heard it (diagnostic; may be stale)."""
        leader = self._sync._getLeader() if self._sync is not None else None
        return None if leader is None else str(leader.address)

    def consensus_term(self) -> int | None:
        """This node's current Raft term (diagnostic: pre-vote keeps it unchanged while a
        cut-off member waits); None before the engine started."""
        return None if self._sync is None else int(self._sync.raftCurrentTerm)

    async def grant(self, ttl: float) -> Lease:
        if ttl < self.min_ttl:
            raise TTLTooShort(
                f"lease TTL {ttl:g}s is below the raft minimum {self.min_ttl:g}s "
                f"(1.5 × election timeout {self._timing.election_max:g}s of profile "
                f"{self._timing.name!r}): raise the TTL or choose a faster profile"
            )
        check_ttl(ttl)
        lease_id, granted = await self._submit(self._state.cmd_grant, _req_id(), ttl)
        return Lease(lease_id, granted)

    async def keepalive(self, lease: Lease) -> bool:
        check_lease_id(lease.id)
        ttl = await self._submit(self._state.cmd_keepalive, lease.id)
        return bool(ttl > 0)

    async def revoke(self, lease: Lease) -> None:
        check_lease_id(lease.id)
        await self._submit(self._state.cmd_revoke, lease.id)

    async def lease_renewed_ago(self, lease_id: int, member: str | None = None) -> float | None:
        """Counted from the later of the last renewal and the current leader's accession,
        except for the lease of the leader that fell (``member`` is its address): that
        member's renewals went through itself, so its silence began before the election
        and is counted from its last renewal (the leader-crash tail of issue 20)."""
        if self._self is None or self._sync is None:
            return None  # a client applies nothing
        now = time.monotonic()
        self._note_leader(now)
        if self._leader is None:
            return None  # without a leader nothing can renew
        age = self._state.renewed_ago(lease_id, now)
        if age is None or (member is not None and member == self._fallen):
            return age
        return min(age, now - self._leader_since)

    def _note_leader(self, now: float) -> None:
        """Track the leader; the one that stops leading has *fallen*, unless it handed over
        (`raft_membership.Handover`: a live leader being removed, whose renewals only wait
        for the transfer). A pre-vote election needs a majority that has not heard from the
        leader for an election timeout (`raft_prevote`), so a fallen leader was silent."""
        assert self._sync is not None
        leader = self._sync._getLeader()
        if leader == self._leader:
            return
        if self._leader is not None:
            address = str(self._leader.address)
            record = self._record
            # Read after the fact, the removal may already have committed: retired says so.
            handed_over = record.pending == ("remove", address) or address in record.retired
            self._fallen = None if handed_over else address
        if leader is not None and str(leader.address) == self._fallen:
            self._fallen = None  # it leads again: its renewals apply as anyone's
        self._leader, self._leader_since = leader, now

    async def get(self, key: str) -> KV | None:
        result = await self.txn([], [Get(key)])
        found = result.responses[0]
        assert isinstance(found, tuple)
        return found[0] if found else None

    async def range(self, prefix: str) -> list[KV]:
        result = await self.txn([], [Get(prefix, prefix=True)])
        found = result.responses[0]
        assert isinstance(found, tuple)
        return list(found)

    async def put(self, key: str, value: bytes, lease: Lease | None = None) -> int:
        return (await self.txn([], [Put(key, value, lease.id if lease else 0)])).revision

    async def delete(self, key: str, *, prefix: bool = False) -> int:
        deleted = (await self.txn([], [Delete(key, prefix)])).responses[0]
        assert isinstance(deleted, int)
        return deleted

    async def txn(
        self, compare: Sequence[Cmp], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        writes = any(not isinstance(op, Get) for op in (*success, *failure))
        wire = (
            _req_id() if writes else "",
            [cmp_wire(c) for c in compare],
            [op_wire(o) for o in success],
            [op_wire(o) for o in failure],
        )
        check_txn(*wire)  # a malformed command never reaches the log from here
        outcome = await self._submit(self._state.cmd_txn, *wire)
        if outcome[0] == "lease_not_found":
            raise LeaseExpired(
                f"lease {outcome[1]} no longer exists (expired or revoked): grant a new one"
            )
        succeeded, revision, responses = outcome
        return TxnResult(succeeded, revision, responses)

    async def revision(self) -> int:
        return int(await self._submit(self._state.cmd_barrier))

    async def has_quorum(self) -> bool:
        try:
            await self._submit(self._state.cmd_barrier, timeout=self._timing.election_max)
        except CoordError:
            return False
        return True

    async def watch(
        self, prefix: str, start_revision: int | None = None
    ) -> AsyncGenerator[WatchEvent]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[list[WatchEvent]] = asyncio.Queue()

        def deliver(events: list[WatchEvent]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closing: nobody listens
                loop.call_soon_threadsafe(queue.put_nowait, events)

        try:
            backlog = self._state.subscribe(deliver, start_revision)
        except ValueError as exc:
            raise Compacted(
                f"watch from revision {start_revision}: history up to revision {exc.args[0]} "
                "was compacted; re-read the keys with range() and watch from its revision"
            ) from None
        first = start_revision or 0
        try:
            for event in backlog:
                if event.kv.key.startswith(prefix):
                    yield event
            while True:
                for event in await queue.get():
                    if event.revision >= first and event.kv.key.startswith(prefix):
                        yield event
        finally:
            self._state.unsubscribe(deliver)

    # --- membership (hakeeper.coord.base.MembershipChanges) -----------------------------

    async def members(self, timeout: float = 10.0) -> Members:
        return await self._membership.members(timeout)

    async def add_member(self, address: str, timeout: float = 60.0) -> Members:
        return await self._membership.change("add", address, timeout)

    async def remove_member(self, address: str, timeout: float = 60.0) -> Members:
        return await self._membership.change("remove", address, timeout)

    # --- machinery ------------------------------------------------------------------------

    async def _submit(
        self, command: Callable[..., Any], *args: Any, timeout: float | None = None
    ) -> Any:
        """Run a replicated command and return what its apply returned on this node.

        Retries (same arguments, hence the same request id) until ``timeout`` when the leader
        changes or an attempt stalls; then raises NoQuorum or Unreachable."""
        if self._sync is None or self._closed:
            raise CoordError("raft coordinator is not running: call start() first")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self._request_timeout if timeout is None else timeout)
        attempt_limit = 2 * self._timing.election_max
        while (remaining := deadline - loop.time()) > 0:
            try:
                attempt = min(remaining, attempt_limit)
                result, error = await called_back(command, *args, timeout=attempt)
            except TimeoutError:
                continue
            if error == FAIL_REASON.SUCCESS:
                if isinstance(result, Skipped):
                    raise CoordError(f"raft applied the command as a no-op: {result.reason}")
                return result
            if error not in _RETRYABLE:
                raise CoordError(f"raft refused the command ({_reason(error)})")
            await asyncio.sleep(min(self._timing.heartbeat, max(0.0, deadline - loop.time())))
        raise self._stalled()

    def _stalled(self) -> CoordError:
        others = [p for p in self._peers if p != self._self]
        connected = [p for p in others if self._sync.isNodeConnected(_node(self._sync, p))]
        if not connected and (self._self is None or len(self._peers) > 1):
            return Unreachable(
                f"raft: no peer of {others} answered: check that the members run and that "
                "the addresses, ports and secret match"
            )
        return NoQuorum(
            f"raft: reached {len(connected) + (self._self is not None)} of {len(self._peers)} "
            f"members ({', '.join(connected) or 'none'}) but nothing committed in time: a "
            "majority is needed; start the missing members or heal the partition"
        )

    async def _expire_leases(self) -> None:
        """On the Raft leader, commit the expiry of every lease past its TTL (local clock).
        On every member, note when the leader changes (`lease_renewed_ago`)."""
        pending: dict[tuple[int, int], float] = {}
        while True:
            await asyncio.sleep(self._timing.heartbeat)
            self._note_leader(time.monotonic())
            if not self._sync._isLeader():
                pending.clear()
                continue
            now = time.monotonic()
            for due in self._state.due_leases(now):
                if now - pending.get(due, -1e9) > self._timing.election_max:
                    pending[due] = now
                    log.info("event=lease_expire lease=%d seq=%d", *due)
                    self._state.cmd_expire(*due, callback=ignore_result)
            live = set(self._state.leases)
            for key in [k for k in pending if k[0] not in live]:
                del pending[key]


def _node(sync: Any, address: str) -> Any:
    for node in sync.otherNodes:
        if node.address == address:
            return node
    return None


def _reason(error: int) -> str:
    names = {v: k for k, v in vars(FAIL_REASON).items() if isinstance(v, int)}
    return str(names.get(error, error))


def _req_id() -> str:
    return uuid.uuid4().hex
