"""Typed cluster state in the coordination key space, and the snapshot the scheduler reads.

Who writes what (shared/DESIGN.md section 2) — nothing else writes these keys:

=================================  ========================================================
key (under /hakeeper/<cluster>/)   written by
=================================  ========================================================
``members/<node>`` (leased)        the node itself (`hakeeper.runtime.membership`)
``controller`` (leased)            the controller election
``assignments/<resource>``         the controller, in txns guarded by its term; the key's
                                   ``mod_revision`` is the assignment's epoch (fencing token)
``status/<node>/<resource>#<i>``   the node's executor only (not leased: after a crash it is
                                   the evidence of what may still run there)
``failcounts/<node>/<resource>``   the node's executor; the CLI's ``resource cleanup``
``runtime/constraints/<r>/<node>`` the CLI (``resource move|ban|clear``)
``runtime/nodes/<node>``           the CLI (``node standby|online|maintenance``)
``runtime/roles/<r>``              the CLI (``resource stop|start``): a run-time target role
``runtime/fenced/<node>``          the controller after a fence device confirmed the node off
                                   (or after fencing it on suspicion), or the operator
                                   (``hakeeper fence --confirm``)
``runtime/leaving/<node>``         the node itself while it shuts down (counts as standby)
``runtime/node-change``            ``hakeeper node add|remove|replace`` (the change in flight)
``notify/rounds/<r>/<id>``         the node acting on a clone with notify = true
``notify/acks/<r>/<id>/<node>``    each node it named, once its agent ran ``notify``
``attributes/<node>/<life>/<name>`` any node's attribute service, for its agents' tools
                                   (``crm_attribute``, ``attrd_updater``); the node itself
                                   clears its ``reboot`` ones when its daemon starts
``config``                         ``hakeeper config apply`` (the cluster file's text)
``events/<ts>-<writer>-<seq>``     anyone, through `hakeeper.runtime.events_log`
``alerts/cursor``                  the controller, guarded by its term: the event revision
                                   every alert has been delivered up to
``jobs/<name>``                     the controller: a periodic job's last outcome
``identity``                       the first backup (the cluster's id); a restore seeds it
                                   with the rest (`hakeeper.runtime.store_records`)
=================================  ========================================================

Every path comes from `hakeeper.runtime.keys` and every value's bytes from
`hakeeper.runtime.record_codec`. Nothing outside this module (and the membership, election,
event-log and record modules it hands out) holds the coordinator or builds a key: callers get
one typed method per thing they do, and one writer per record.

The stored config is read through `hakeeper.runtime.stored_config.stored_spec` (rule 5).

A node is *online* while its member key exists; otherwise *lost* if any status of it still
says something runs there (and *fenced* once confirmed off), else *offline*.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass

from hakeeper.coord.base import KV, Cmp, Coordinator, Delete, Get, Lease, Op, Put
from hakeeper.errors import ConfigError, UnreadableFormat
from hakeeper.model.attributes import (
    Lifetime,
    NodeAttribute,
)
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.records import (
    Assignment,
    FencedMark,
    InstanceStatus,
    MemberRecord,
    NodeFlags,
)
from hakeeper.model.roles import TargetRole
from hakeeper.model.state import (
    FailCount,
    RuntimeKind,
)
from hakeeper.model.timing import TimingProfile
from hakeeper.model.wire_version import SUPPORTED, Format, check_readable
from hakeeper.runtime.election import Controller, ControllerElection, term_guard
from hakeeper.runtime.events_log import EventLog
from hakeeper.runtime.job_records import JobBook
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.membership import Membership
from hakeeper.runtime.node_change_log import NodeChangeLog
from hakeeper.runtime.notify_board import NotifyBoard
from hakeeper.runtime.observations import Observer
from hakeeper.runtime.observed import (
    Observed,
    assignment_from_kv,
    attributes_from_kvs,
    build_observed,
    status_from_kv,
)
from hakeeper.runtime.record_codec import (
    DECODE_ERRORS,
    decode_alert_cursor,
    decode_constraint,
    decode_failcount,
    decode_flags,
    decode_member,
    decode_store_format,
    decode_target_role,
    encode_alert_cursor,
    encode_assignment,
    encode_attribute,
    encode_constraint,
    encode_failcount,
    encode_fenced,
    encode_flags,
    encode_status,
    encode_store_format,
    encode_target_role,
)
from hakeeper.runtime.refusals import Refusals
from hakeeper.runtime.store_records import RecordKeeper
from hakeeper.runtime.stored_config import (
    StoredConfigProblem,
    short_reason,
    stored_spec,
    stored_text,
)

REFUSED_FIX = (
    "an assignment or a status is written anew by the cluster at the next change of its "
    "resource, a fail count by hakeeper resource cleanup; a node flag, constraint or role "
    "override by running again the hakeeper command that set it"
)


@dataclass(frozen=True, slots=True)
class LiveInstances:
    """The members and every instance status, read in one revision (for clone followers)."""

    members: frozenset[str]
    statuses: tuple[InstanceStatus, ...]
    revision: int


@dataclass(frozen=True, slots=True)
class LiveAttributes:
    """Every stored node attribute and the members, read in one revision."""

    attributes: tuple[NodeAttribute, ...]
    members: frozenset[str]


@dataclass(frozen=True, slots=True)
class MemberLeases:
    """Each member's lease id and the controller, read in one revision."""

    leases: Mapping[str, int]
    controller: Controller | None


@dataclass(frozen=True, slots=True)
class StoredConfig:
    """The cluster file's bytes as ``config apply`` stored them, and their revision."""

    raw: bytes
    revision: int


class ClusterStore:
    """Reads and writes the cluster's records; every read of the whole is one revision.

    The only owner of the coordinator's key space: callers get typed records and never a key.
    Outcomes follow shared/DESIGN.md section 11.1: a guarded write that lost its race returns
    None or False; an engine that is unreachable or has no quorum raises `CoordError`."""

    def __init__(self, coord: Coordinator, keys: KeySpace) -> None:
        self._coord = coord
        self._keys = keys
        #: Torn records already logged, by key and revision: the controller reads every
        #: change and the executor every few seconds, and one bad write must not fill the
        #: log; a new bad write of the same key is logged again.
        self._refused = Refusals()

    # --- the low-level parts that live in the same key space ----------------------------------

    def event_log(self, writer: str) -> EventLog:
        return EventLog(self._coord, self._keys, writer)

    def node_changes(self) -> NodeChangeLog:
        """The one membership change in flight (``hakeeper node add|remove|replace``)."""
        return NodeChangeLog(self._coord, self._keys)

    def notify_board(self) -> NotifyBoard:
        """Clone notification rounds and their acknowledgements (`hakeeper.runtime.notifier`)."""
        return NotifyBoard(self._coord, self._keys)

    def election(self, node: str) -> ControllerElection:
        return ControllerElection(self._coord, self._keys, node)

    def jobs(self) -> JobBook:
        """The periodic controller jobs' records (`job_records`)."""
        return JobBook(self._coord, self._keys)

    def records(self) -> RecordKeeper:
        """The records a backup keeps, read as one and seeded back (`store_records`)."""
        return RecordKeeper(self._coord, self._keys)

    def membership(
        self,
        record: MemberRecord,
        timing: TimingProfile,
        clock: Callable[[], float],
        observer: Observer | None = None,
        every: Callable[[], float] | None = None,
    ) -> Membership:
        return Membership(self._coord, self._keys, record, timing, clock, observer, every)

    # --- the snapshot ------------------------------------------------------------------------

    async def has_quorum(self) -> bool:
        """Whether the engine can commit (reads go through its log: none without quorum)."""
        return await self._coord.has_quorum()

    async def observe(self, spec: ClusterSpec, now: float) -> Observed:
        kvs = await self._coord.range(self._keys.root)
        revision = max((kv.mod_revision for kv in kvs), default=0)
        observed = build_observed(self._keys, spec, kvs, now, revision)
        for kv, error in observed.refused:
            self._refuse(kv, error)
        return observed

    def _refuse(self, kv: KV, error: str) -> None:
        """A torn record, said once (rule 5: refused where it is read, never acted on; left
        out until written anew)."""
        self._refused.refuse(kv, error, REFUSED_FIX)

    async def changes(self) -> AsyncGenerator[int]:
        """The revision of every change of the cluster's records, as it happens."""
        async with contextlib.aclosing(self._coord.watch(self._keys.root)) as events:
            async for event in events:
                yield event.revision

    async def controller(self) -> Controller | None:
        """Who is controller now, under which term (None while there is none)."""
        return await self.election("reader").current()

    # --- assignments (the controller writes, every executor reads) ----------------------------

    async def assignments(self) -> dict[str, Assignment]:
        """Every assignment, each with its epoch (the key's ``mod_revision``); a torn or
        foreign one is left out, and logged (the executor keeps what it runs for it)."""
        found = [self._assignment(kv) for kv in await self._coord.range(self._keys.assignments)]
        return {a.resource: a for a in found if a is not None}

    async def assignment_changes(self) -> AsyncGenerator[Assignment]:
        """Every assignment written, as the watch delivers it, with its epoch: a committed
        value, so the executor acts on it without a read of its own (a Raft commit less on
        every failover). A deleted assignment yields nothing: no executor acts on one; nor
        does a torn or foreign one (logged)."""
        async with contextlib.aclosing(self._coord.watch(self._keys.assignments)) as events:
            async for event in events:
                if event.type == "put":
                    assignment = self._assignment(event.kv)
                    if assignment is not None:
                        yield assignment

    def _assignment(self, kv: KV) -> Assignment | None:
        try:
            return assignment_from_kv(self._keys, kv)
        except DECODE_ERRORS as exc:
            self._refuse(kv, repr(exc))
            return None

    async def write_assignments(
        self, term: int, assignments: Mapping[str, Assignment]
    ) -> int | None:
        """Write ``assignments`` in one txn guarded by the controller ``term``; the revision
        written is their new epoch. None when the term has ended (nothing written)."""
        puts = [
            Put(self._keys.assignment(r), encode_assignment(a))
            for r, a in sorted(assignments.items())
        ]
        return await self._guarded(term, puts)

    async def _guarded(
        self, term: int, ops: Sequence[Op], compare: Sequence[Cmp] = ()
    ) -> int | None:
        result = await self._coord.txn([term_guard(self._keys, term), *compare], ops)
        return result.revision if result.succeeded else None

    # --- alerts (the controller delivers them) ------------------------------------------------

    async def alert_cursor(self) -> int | None:
        """The event revision alerts were delivered up to (None: never, a new cluster)."""
        key = self._keys.alert_cursor
        found = [kv for kv in await self._coord.range(key) if kv.key == key]
        return decode_alert_cursor(found[0].value) if found else None

    async def save_alert_cursor(self, term: int, revision: int) -> bool:
        """Record ``revision`` as delivered, guarded by the controller ``term`` (False: the
        term ended, nothing written)."""
        put = Put(self._keys.alert_cursor, encode_alert_cursor(revision))
        return await self._guarded(term, [put]) is not None

    # --- instance statuses (each node's executor writes its own) ------------------------------

    async def report(self, status: InstanceStatus) -> None:
        key = self._keys.instance_status(status.node, status.resource, status.instance)
        await self._coord.put(key, encode_status(status))

    async def forget_status(self, node: str, resource: str, instance: int) -> None:
        await self._coord.delete(self._keys.instance_status(node, resource, instance))

    async def live_instances(self) -> LiveInstances:
        """Members and statuses in one read; a torn or foreign status is skipped."""
        kvs = await self._coord.range(self._keys.root)
        members: set[str] = set()
        statuses: list[InstanceStatus] = []
        for kv in kvs:
            if kv.key.startswith(self._keys.members):
                members.add(kv.key[len(self._keys.members) :])
            elif kv.key.startswith(self._keys.status):
                try:
                    statuses.append(status_from_kv(self._keys, kv))
                except DECODE_ERRORS:
                    continue
        revision = max((kv.mod_revision for kv in kvs), default=0)
        return LiveInstances(frozenset(members), tuple(statuses), revision)

    async def instance_changes(self, after: int) -> AsyncGenerator[int]:
        """The revision of every change of a member or a status after revision ``after``."""
        watched = (self._keys.members, self._keys.status)
        async with contextlib.aclosing(self._coord.watch(self._keys.root, after + 1)) as events:
            async for event in events:
                if event.kv.key.startswith(watched):
                    yield event.revision

    # --- fail counts ---------------------------------------------------------------------------

    async def record_failure(self, node: str, resource: str, now: float) -> FailCount:
        key = self._keys.failcount(node, resource)
        kv = await self._coord.get(key)
        count = 0
        if kv is not None:
            try:
                count = decode_failcount(kv.value, resource, node).count
            except DECODE_ERRORS as exc:
                self._refuse(kv, repr(exc))  # counted from this failure, and replaced
        failure = FailCount(resource, node, count + 1, now)
        await self._coord.put(key, encode_failcount(failure))
        return failure

    async def clear_failcounts(self, resource: str, node: str | None = None) -> int:
        kvs = await self._coord.range(self._keys.failcounts)
        doomed = [
            kv.key
            for kv in kvs
            if kv.key.endswith(f"/{resource}")
            and (node is None or kv.key == self._keys.failcount(node, resource))
        ]
        for key in doomed:
            await self._coord.delete(key)
        return len(doomed)

    # --- the CLI's run-time overrides ---------------------------------------------------------

    async def set_constraint(self, kind: RuntimeKind, resource: str, node: str) -> None:
        await self._coord.put(self._keys.constraint(resource, node), encode_constraint(kind))

    async def constraints_of(self, resource: str) -> dict[str, RuntimeKind]:
        """The moves and bans of ``resource``, by node."""
        prefix = self._keys.constraint(resource, "")
        return {
            kv.key[len(prefix) :]: decode_constraint(kv.value)
            for kv in await self._coord.range(prefix)
        }

    async def clear_constraints(self, resource: str, node: str | None = None) -> int:
        key = self._keys.constraint(resource, node or "")
        return await self._coord.delete(key, prefix=node is None)

    async def set_node_flags(self, node: str, flags: NodeFlags) -> None:
        await self._coord.put(self._keys.node_flag(node), encode_flags(flags))

    async def node_flags(self, node: str) -> NodeFlags:
        kv = await self._coord.get(self._keys.node_flag(node))
        return decode_flags(kv.value) if kv else NodeFlags()

    async def set_target_role(self, resource: str, role: TargetRole | None) -> None:
        """``resource stop|start`` from the CLI: overrides the file's target_role; None clears."""
        key = self._keys.target_role(resource)
        if role is None:
            await self._coord.delete(key)
        else:
            await self._coord.put(key, encode_target_role(role))

    async def target_role(self, resource: str) -> TargetRole | None:
        """The run-time target role of ``resource``, if the CLI set one."""
        kv = await self._coord.get(self._keys.target_role(resource))
        return decode_target_role(kv.value) if kv else None

    # --- node attributes (the attribute service writes for its agents) -----------------------

    async def set_attribute(self, attr: NodeAttribute) -> None:
        key = self._keys.attribute(attr.node, attr.lifetime, attr.name)
        await self._coord.put(key, encode_attribute(attr))

    async def delete_attribute(self, node: str, name: str, lifetime: Lifetime) -> None:
        await self._coord.delete(self._keys.attribute(node, lifetime, name))

    async def clear_transient_attributes(self, node: str) -> int:
        """A node whose daemon starts forgets its ``reboot`` attributes (Pacemaker clears a
        node's transient attributes when it joins)."""
        return await self._coord.delete(self._keys.attribute(node, "reboot", ""), prefix=True)

    async def live_attributes(self) -> LiveAttributes:
        """Every attribute and the members in one read; a torn or foreign value is skipped."""
        kvs = await self._coord.range(self._keys.root)
        members = frozenset(
            kv.key[len(self._keys.members) :] for kv in kvs if kv.key.startswith(self._keys.members)
        )
        return LiveAttributes(attributes_from_kvs(self._keys, kvs), members)

    # --- members and fenced marks ---------------------------------------------------------------

    async def is_member(self, node: str) -> bool:
        """Whether ``node`` holds a live member lease."""
        return await self._coord.get(self._keys.member(node)) is not None

    async def member_records(self) -> dict[str, MemberRecord]:
        """What each live node published: its address, release and format versions."""
        prefix = len(self._keys.members)
        out: dict[str, MemberRecord] = {}
        for kv in await self._coord.range(self._keys.members):
            node = kv.key[prefix:]
            try:
                out[node] = decode_member(kv.value)
            except DECODE_ERRORS:
                out[node] = MemberRecord(node, "?")  # torn or foreign: live, versions unknown
        return out

    async def claim_format(self) -> int:
        """The cluster store's format version: this release's when none is stored yet (a
        store without a mark was written by a release before marks, which wrote format 1);
        UnreadableFormat when it is one this release cannot read."""
        key = self._keys.store_format
        mine = encode_store_format(SUPPORTED[Format.CLUSTER_STORE].newest)
        await self._coord.txn([Cmp(key, "create_revision", "==", 0)], [Put(key, mine)])
        kv = await self._coord.get(key)
        where = f"the store of cluster {self._keys.cluster!r} (key {key})"
        try:
            found = decode_store_format(mine if kv is None else kv.value)
        except DECODE_ERRORS as exc:
            raise UnreadableFormat(f"{where} holds an unreadable format mark: {exc}") from exc
        check_readable(Format.CLUSTER_STORE, found, where)
        return found

    async def member_leases(self) -> MemberLeases:
        """Every member's lease and the controller, in one linearizable read."""
        result = await self._coord.txn(
            [], [Get(self._keys.members, prefix=True), Get(self._keys.controller)]
        )
        members, controller = result.responses
        assert isinstance(members, tuple)
        assert isinstance(controller, tuple)
        prefix = len(self._keys.members)
        return MemberLeases(
            {kv.key[prefix:]: kv.lease for kv in members},
            Controller(controller[0].value.decode(), controller[0].create_revision)
            if controller
            else None,
        )

    async def mark_fenced(
        self, node: str, mark: FencedMark, *, term: int | None = None
    ) -> int | None:
        """Record that ``node`` is certainly off: what it ran runs no more; the revision.

        With ``term`` (the controller) the write is guarded by it: None when the term has
        ended and nothing was written. Without (the operator, ``hakeeper fence``) it is not."""
        key = self._keys.fenced(node)
        if term is None:
            return await self._coord.put(key, encode_fenced(mark))
        return await self._guarded(term, [Put(key, encode_fenced(mark))])

    async def fence_out_suspect(
        self, node: str, lease: int, term: int, mark: FencedMark, *, was_controller: bool
    ) -> bool:
        """Mark a suspect fenced and remove its member key (and controller key) in one txn,
        guarded by its lease being ``lease`` and by the controller ``term``: the scheduler
        sees it lost and fenced in the same revision. False when either guard failed."""
        ops: list[Op] = [Put(self._keys.fenced(node), encode_fenced(mark))]
        ops.append(Delete(self._keys.member(node)))
        if was_controller:
            ops.append(Delete(self._keys.controller))
        same_lease = Cmp(self._keys.member(node), "lease", "==", lease)
        return await self._guarded(term, ops, [same_lease]) is not None

    async def revoke(self, lease: int) -> None:
        """End a lease at once, and every key written under it."""
        await self._coord.revoke(Lease(lease, 0.0))

    async def lease_renewed_ago(self, lease: int, member: str | None = None) -> float | None:
        """Seconds since the lease's last renewal, where this member knows it (``member``:
        `Coordinator.lease_renewed_ago`)."""
        return await self._coord.lease_renewed_ago(lease, member)

    async def rejoined(self, node: str) -> None:
        """A node that comes back clears its fenced and leaving marks (after re-probing)."""
        await self._coord.delete(self._keys.fenced(node))
        await self._coord.delete(self._keys.leaving(node))

    async def leaving(self, node: str) -> None:
        """A node shutting down: the scheduler treats it as standby and moves its resources."""
        await self._coord.put(self._keys.leaving(node), b"1")

    # --- the stored config ----------------------------------------------------------------------

    async def config_record(self) -> StoredConfig | None:
        kv = await self._coord.get(self._keys.config)
        return None if kv is None else StoredConfig(kv.value, kv.mod_revision)

    async def publish_first_config(self, text: str) -> StoredConfig | None:
        """Store ``text`` unless a config is stored already; the one stored afterwards."""
        key = self._keys.config
        await self._coord.txn([Cmp(key, "create_revision", "==", 0)], [Put(key, text.encode())])
        return await self.config_record()

    async def publish_config(self, text: str, base_revision: int) -> bool:
        """Store ``text`` unless the stored config changed since ``base_revision`` (0: none
        was stored); False when another one was applied meanwhile (nothing written)."""
        key = self._keys.config
        result = await self._coord.txn(
            [Cmp(key, "mod_revision", "==", base_revision)], [Put(key, text.encode())]
        )
        return result.succeeded

    async def config_changes(self) -> AsyncGenerator[StoredConfig]:
        """Every config stored from now on, as it is written."""
        async with contextlib.aclosing(self._coord.watch(self._keys.config)) as events:
            async for event in events:
                if event.type == "put":
                    yield StoredConfig(event.kv.value, event.revision)

    async def stored_config(self) -> str | None:
        """The stored config's text; a ConfigError when its bytes are not UTF-8."""
        record = await self.config_record()
        if record is None:
            return None
        return stored_text(record.raw, f"stored config rev {record.revision}")

    async def stored_config_problem(self) -> StoredConfigProblem | None:
        """Why the stored config is refused (for ``status``), or None when it loads or is
        absent."""
        record = await self.config_record()
        if record is None:
            return None
        try:
            stored_spec(record.raw, f"stored config rev {record.revision}")
        except ConfigError as exc:
            return StoredConfigProblem(record.revision, short_reason(exc))
        return None
