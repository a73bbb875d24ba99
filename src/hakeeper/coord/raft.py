"""The embedded coordination backend: etcd's contract on Raft (PySyncObj), in-process.

A *member* (``self_address`` set) votes and stores the log under ``data_dir``; a *client*
(``self_address=None``) is a PySyncObj read-only node: it receives the committed log from the
leader and forwards its commands, so the CLI and tests run the same code as the agent without
adding a voter.

Every command goes through the Raft log, reads included, so every answer is linearizable.
A command is retried until its deadline when the leader changes or does not answer; each
carries a request id and the state machine answers a repeated id from its cache, so a retried
write applies once. PySyncObj's untyped camelCase API stays inside this module.

Membership changes (`hakeeper.coord.base.MembershipChanges`), on PySyncObj's single-server
changes (``dynamicMembershipChange``): the leader appends an ``add``/``rem`` entry and every
node switches to the new voter list when the entry reaches its log, not when it commits, as in
the Raft dissertation (section 4.1). From then the leader counts commits and candidates count
votes over the new list, so a 3→4 change needs 3 of 4 at once and never lets 2 decide. That is
safe only one change at a time: PySyncObj refuses a change until its leader has committed an
entry of its own term, but its check for a change still in flight is never armed (0.3.17), so
hakeeper holds the slot itself: `cmd_member_propose` takes it through the log before the
entry is proposed, and the apply of the entry (or `cmd_member_abort`) frees it. The
replicated record (the membership fields of `raft_state.KVStateMachine`) follows the entries
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
import functools
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from pathlib import Path
from typing import Any

from hakeeper.config.secret_file import SecretFile
from hakeeper.coord.base import (
    KV,
    ChangeInProgress,
    Cmp,
    Delete,
    Get,
    Lease,
    Members,
    Op,
    Put,
    TxnResult,
    WatchEvent,
)
from hakeeper.coord.pysyncobj_compat import FAIL_REASON, GuardedSyncObj, Skipped, SyncObjConf
from hakeeper.coord.raft_state import (
    CmpWire,
    KVStateMachine,
    OpWire,
    check_lease_id,
    check_ttl,
    check_txn,
    membership_fingerprint,
)
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


def parse_peer(address: str) -> tuple[str, int]:
    """Split ``host:port``; a ConfigError that says what is wrong otherwise."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"raft peer {address!r} is not host:port (e.g. 127.0.0.11:7480)")
    return host, int(port)


class RaftCoordinator:
    """`hakeeper.coord.base.Coordinator` on an embedded Raft group."""

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
        self._sync: Any = None
        self._ticker: asyncio.Task[None] | None = None
        self._closed = False
        # The Raft leader as last seen, and since when (local clock): during an election no
        # renewal can apply, so silence before the current leader took office proves nothing.
        self._leader: object | None = None
        self._leader_since = time.monotonic()

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
            revision = await self._submit(self._state.cmd_barrier, timeout=_left(loop, deadline))
            # The barrier has applied here: this learner holds everything committed before it.
            with self._state.lock:
                members = self._state.members()
            if address in members.voters:
                break
            if not reported:
                await self._submit(self._state.cmd_learner_caught_up, address, revision,
                                   timeout=_left(loop, deadline))  # fmt: skip
                log.info("event=raft_learner_caught_up address=%s revision=%d", address, revision)
                reported = True
            await asyncio.sleep(self._timing.heartbeat)
        learner = self._sync
        self._sync = None
        await asyncio.to_thread(learner.destroy_synchronous)
        # The voter replays the journal the learner wrote into a fresh state machine.
        self._state = KVStateMachine()
        self._sync = self._make_sync(address, [v for v in members.voters if v != address])
        self._ticker = asyncio.create_task(self._expire_leases(), name="raft-lease-expiry")
        log.info("event=raft_learner_promoted address=%s version=%d", address, members.version)

    def _make_sync(self, self_node: str | None, others: list[str]) -> Any:
        timing = self._timing
        journal = dump = None
        if self._data_dir is not None:
            # The journal and snapshot hold the whole key space (fence passwords among it),
            # and PySyncObj writes them with the process umask: the directory keeps them private.
            self._data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._data_dir.chmod(0o700)
            journal = str(self._data_dir / "raft.journal")
            dump = str(self._data_dir / "raft.dump")
        learner = self_node is None and self._self is not None
        conf = SyncObjConf(
            autoTick=True,
            autoTickPeriod=min(0.02, timing.heartbeat / 2),
            appendEntriesPeriod=timing.heartbeat,
            appendEntriesUseBatch=False,
            raftMinTimeout=timing.election_min,
            raftMaxTimeout=timing.election_max,
            leaderFallbackTimeout=timing.election_max,
            # Followers exchange nothing in steady state; PySyncObj drops a link that reads
            # nothing for connectionTimeout, and a vote request sent while it is down is
            # lost, which turned one election into two. Keep links up, redial fast.
            connectionTimeout=max(60.0, 20 * timing.election_max),
            connectionRetryTime=max(timing.heartbeat, 0.05),
            commandsWaitLeader=True,
            journalFile=journal,
            fullDumpFile=dump,
            useFork=False,
            # A learner never compacts: its snapshot would name no member for itself, and
            # the voter it becomes reads what it wrote. Snapshots sent by the leader still land.
            logCompactionMinEntries=10**9 if learner else 5000,
            logCompactionMinTime=10**9 if learner else 60,
            dynamicMembershipChange=True,
            # PySyncObj listens on every address unless told; a member listens on its own only.
            bindAddress=self_node,
            onStateChanged=_log_state_change,
        )
        # No `password`: PySyncObj's own Fernet layer would parse frames before checking them;
        # AuthTransport authenticates each peer, then each frame, before anything is unpickled.
        sync = GuardedSyncObj(
            self_node,
            others,
            conf,
            consumers=[self._state],
            transportClass=functools.partial(AuthTransport, secret_file=self._secret_file),
        )
        sync.on_member_entry = self._state.apply_member_entry
        if self_node is not None:
            sync.addOnTickCallback(_Handover(sync, self._state, self_node))
        return sync

    async def verify_membership(self, timeout: float) -> None:
        """Check this node's peer list against the group's committed membership.

        Accepted: any committed version of the voter list, or the one the change in flight
        makes. Refused (EngineMismatch): a retired address, or a list of another group."""
        mine = membership_fingerprint(self._peers)
        try:
            verdict, version = await self._submit(
                self._state.cmd_identify, mine, list(self._peers), self._self or "",
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
                f"{version}) and a removed address never votes again: delete its data "
                f"directory {self._data_dir} and add it back with a new address (or join it "
                "afresh with `join` and `add_member` under another address)"
            )
        if verdict != "ok":
            raise EngineMismatch(
                f"raft: this node's peer list {sorted(self._peers)} (fingerprint {mine}) "
                "disagrees with every version of the group's committed membership (now "
                f"version {version}): give this node the peers of the group it belongs to"
            )

    async def _probe_identity(self, fingerprint: str, timeout: float) -> tuple[str, int]:
        probe = RaftCoordinator(
            self._peers,
            secret_file=self._secret_file.path,
            timing=self._timing,
            request_timeout=self._request_timeout,
        )
        await probe.start()
        try:
            answer: tuple[str, int] = await probe._submit(
                probe._state.cmd_identify, fingerprint, list(self._peers), self._self,
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

    async def lease_renewed_ago(self, lease_id: int) -> float | None:
        """Counted from the later of the last renewal and the current leader's accession."""
        if self._self is None or self._sync is None:
            return None  # a client applies nothing
        now = time.monotonic()
        self._note_leader(now)
        if self._leader is None:
            return None  # without a leader nothing can renew
        age = self._state.renewed_ago(lease_id, now)
        return None if age is None else min(age, now - self._leader_since)

    def _note_leader(self, now: float) -> None:
        assert self._sync is not None
        leader = self._sync._getLeader()
        if leader != self._leader:
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
            [_cmp_wire(c) for c in compare],
            [_op_wire(o) for o in success],
            [_op_wire(o) for o in failure],
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
        result: Members = await self._submit(self._state.cmd_members, timeout=timeout)
        return result

    async def add_member(self, address: str, timeout: float = 60.0) -> Members:
        return await self._change("add", address, timeout)

    async def remove_member(self, address: str, timeout: float = 60.0) -> Members:
        return await self._change("remove", address, timeout)

    async def _change(self, kind: str, address: str, timeout: float) -> Members:
        parse_peer(address)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        before = await self.members(_left(loop, deadline))
        verdict = await self._submit(
            self._state.cmd_member_propose, _req_id(), kind, address, before.version,
            timeout=_left(loop, deadline),
        )  # fmt: skip
        if verdict == "noop":
            return before
        if verdict != "ok":
            raise _refusal(verdict, kind, address, before)
        log.info("event=raft_member_change kind=%s address=%s version=%d", kind, address,
                 before.version)  # fmt: skip
        try:
            if kind == "add":
                await self._await_caught_up(address, deadline)
            await self._propose_entry(kind, address, deadline)
            return await self.members(_left(loop, deadline))
        except BaseException:
            # Free the slot unless the entry applied meanwhile (then the apply freed it).
            with contextlib.suppress(CoordError):
                await self._submit(self._state.cmd_member_abort, kind, address,
                                   timeout=self._request_timeout)  # fmt: skip
            raise

    async def _await_caught_up(self, address: str, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            members = await self.members(_left(loop, deadline))
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
        propose = self._sync.addNodeToCluster if kind == "add" else self._sync.removeNodeFromCluster
        while loop.time() < deadline:
            members = await self.members(_left(loop, deadline))
            if (address in members.voters) == (kind == "add"):
                return
            done: asyncio.Future[tuple[Any, int]] = loop.create_future()

            def resolve(
                result: Any, error: int, done: asyncio.Future[tuple[Any, int]] = done
            ) -> None:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_settle, done, (result, error))

            propose(address, callback=resolve)
            with contextlib.suppress(TimeoutError):
                # Denied while the leader's own term has nothing committed yet, or while the
                # leader is the one leaving (it hands over first): ask again shortly.
                attempt = min(_left(loop, deadline), 2 * self._timing.election_max)
                await asyncio.wait_for(done, attempt)
            await asyncio.sleep(self._timing.heartbeat)
        raise NoQuorum(
            f"raft: the {kind} of {address} did not commit in time: check that a majority of "
            "the voters runs; the change slot is freed, run it again"
        )

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
            done: asyncio.Future[tuple[Any, int]] = loop.create_future()

            def resolve(
                result: Any, error: int, done: asyncio.Future[tuple[Any, int]] = done
            ) -> None:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_settle, done, (result, error))

            command(*args, callback=resolve)
            try:
                result, error = await asyncio.wait_for(done, min(remaining, attempt_limit))
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
                    self._state.cmd_expire(*due, callback=_ignore)
            live = set(self._state.leases)
            for key in [k for k in pending if k[0] not in live]:
                del pending[key]


_RAFT_STATES = {0: "follower", 1: "candidate", 2: "leader"}


def _log_state_change(old: int, new: int) -> None:
    log.info(
        "event=raft_state from=%s to=%s", _RAFT_STATES.get(old, old), _RAFT_STATES.get(new, new)
    )


def _settle(future: asyncio.Future[tuple[Any, int]], value: tuple[Any, int]) -> None:
    if not future.done():
        future.set_result(value)


def _ignore(_result: Any, _error: int) -> None:
    """Callback for fire-and-forget commands: the next tick decides again if needed."""


def _left(loop: asyncio.AbstractEventLoop, deadline: float) -> float:
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


class _Handover:
    """Runs on PySyncObj's tick thread: a leader whose removal is in flight hands leadership
    to a caught-up voter (a leader cannot append its own removal; PySyncObj denies it)."""

    EVERY = 0.5  # seconds between attempts

    def __init__(self, sync: Any, state: KVStateMachine, address: str) -> None:
        self._sync = sync
        self._state = state
        self._address = address
        self._last = 0.0

    def __call__(self) -> None:
        if self._state.pending != ("remove", self._address) or not self._sync._isLeader():
            return
        now = time.monotonic()
        if now - self._last >= self.EVERY:
            self._last = now
            log.info("event=raft_leader_hand_over reason=removal address=%s", self._address)
            self._sync.transferLeadership(callback=_ignore)


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


def _cmp_wire(cmp: Cmp) -> CmpWire:
    return (cmp.key, cmp.target, cmp.op, cmp.operand)


def _op_wire(op: Op) -> OpWire:
    if isinstance(op, Put):
        return ("put", op.key, op.value, op.lease)
    if isinstance(op, Delete):
        return ("del", op.key, op.prefix, None)
    return ("get", op.key, op.prefix, None)
