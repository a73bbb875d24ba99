"""The replicated state machine behind the embedded Raft backend: etcd's model on PySyncObj.

Every member applies the same committed commands in the same order, so everything in the
replicated part (keys, leases, revision, recent history, request results) is identical on all
of them. Apply functions are deterministic: no clock, no randomness. Two things are local to
each member and never replicated:

* ``renewed_at`` — the local monotonic time at which this member applied each lease's last
  grant or renewal. Only the Raft leader uses it, to decide that a lease has expired; it then
  commits an ``expire`` command through the log. Because a member applies a renewal only after
  the holder sent it, a lease never expires earlier than its TTL after the holder's send,
  whichever member leads (shared/DESIGN.md section 3).
* watch subscribers — callbacks fed with each revision's events as they are applied.

Apply runs on PySyncObj's thread; readers on the event loop's thread take ``lock``.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hakeeper.coord.base import KV, MAX_TXN_OPS, Cmp, Delete, Op, Put, WatchEvent
from hakeeper.coord.pysyncobj_compat import SyncObjConsumer, replicated
from hakeeper.errors import CoordError

# Wire forms of compares and ops: plain tuples, so the Raft log does not depend on class layout.
CmpWire = tuple[str, str, str, bytes | int]
OpWire = tuple[str, str, Any, Any]  # ("put", key, value, lease) | ("del"|"get", key, prefix, None)
TxnOutcome = tuple[bool, int, tuple[Any, ...]]

HISTORY_LIMIT = 20_000
REQUEST_CACHE_LIMIT = 5_000

# Bounds of one command, checked before it is proposed and again when it is applied (etcd's
# own: 1.5 MiB per request; MAX_TXN_OPS per txn, from the contract). A frame must hold one
# command whole.
MAX_KEY_BYTES = 4096
MAX_VALUE_BYTES = 1024 * 1024
MAX_COMMAND_BYTES = 2 * 1024 * 1024
MAX_ID_CHARS = 64
MAX_TTL = 7 * 24 * 3600.0
_TARGETS = {"value": 0, "create_revision": 1, "mod_revision": 2, "version": 3, "lease": 4}
_CMP_OPS = frozenset({"==", "!=", "<", ">"})

Subscriber = Callable[[list[WatchEvent]], None]


@dataclass(slots=True)
class LeaseRecord:
    ttl: float
    seq: int = 0  # bumped on every renewal, so a stale expire command is a no-op
    keys: set[str] = field(default_factory=set)


class LeaseNotFound(Exception):
    """Raised inside apply when a put names a lease that does not exist."""

    def __init__(self, lease: int) -> None:
        super().__init__(lease)
        self.lease = lease


class MalformedCommand(CoordError):
    """A command of the wrong shape, type or size: refused before it is proposed, and
    applied as a no-op should one reach the log anyway."""


def fail(what: str) -> MalformedCommand:
    return MalformedCommand(f"raft command refused: {what}")


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_id(value: object, what: str = "request id") -> None:
    if not isinstance(value, str) or len(value) > MAX_ID_CHARS:
        raise fail(f"{what} must be a string of at most {MAX_ID_CHARS} characters")


def check_lease_id(value: object) -> None:
    if not is_int(value) or not 0 <= value < 2**63:  # type: ignore[operator]
        raise fail(f"lease id {value!r} is not a non-negative integer")


def check_ttl(value: object) -> None:
    if not isinstance(value, int | float) or not (math.isfinite(value) and 0 < value <= MAX_TTL):
        raise fail(f"lease TTL {value!r} is not a number in (0, {MAX_TTL:g}] seconds")


def _key_size(key: object) -> int:
    if not isinstance(key, str):
        raise fail(f"key {key!r} is not a string")
    size = len(key.encode("utf-8", "surrogatepass"))
    if size > MAX_KEY_BYTES:
        raise fail(f"a key of {size} bytes exceeds {MAX_KEY_BYTES}")
    return size


def _cmp_size(cmp: object) -> int:
    if not isinstance(cmp, tuple | list) or len(cmp) != 4:
        raise fail("a compare is not (key, target, op, operand)")
    key, target, op, operand = cmp
    if target not in _TARGETS or op not in _CMP_OPS:
        raise fail(f"compare target {target!r} or operator {op!r} is unknown")
    if target == "value":
        if not isinstance(operand, bytes) or len(operand) > MAX_VALUE_BYTES:
            raise fail(f"a value compare needs bytes of at most {MAX_VALUE_BYTES}")
        return _key_size(key) + len(operand)
    if not is_int(operand):
        raise fail(f"a {target} compare needs an integer, not {type(operand).__name__}")
    return _key_size(key) + 8


def _op_size(op: object) -> int:
    if not isinstance(op, tuple | list) or len(op) != 4:
        raise fail("an operation is not (kind, key, argument, lease)")
    kind, key, arg, lease = op
    if kind == "put":
        if not isinstance(arg, bytes) or len(arg) > MAX_VALUE_BYTES:
            raise fail(f"a put value must be bytes of at most {MAX_VALUE_BYTES}")
        check_lease_id(lease)
        return _key_size(key) + len(arg)
    if kind in ("del", "get"):
        if not isinstance(arg, bool) or lease is not None:
            raise fail(f"a {kind} takes (key, prefix flag)")
        return _key_size(key)
    raise fail(f"operation kind {kind!r} is unknown")


def check_txn(req_id: object, compare: object, success: object, failure: object) -> None:
    """Refuse a txn whose shape, types or sizes are wrong (MalformedCommand)."""
    check_id(req_id)
    if not (
        isinstance(compare, list | tuple)
        and isinstance(success, list | tuple)
        and isinstance(failure, list | tuple)
    ):
        raise fail("compare, success and failure must be lists")
    count = len(compare) + len(success) + len(failure)
    if count > MAX_TXN_OPS:
        raise fail(f"{count} compares and operations exceed {MAX_TXN_OPS} per txn")
    size = sum(_cmp_size(c) for c in compare)
    size += sum(_op_size(o) for o in (*success, *failure))
    if size > MAX_COMMAND_BYTES:
        raise fail(f"a txn of {size} bytes exceeds {MAX_COMMAND_BYTES}")


class KVStateMachine(SyncObjConsumer):  # type: ignore[misc]
    """etcd-like key space: global revision, leases, txns, bounded event history."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self._local_fields = {"_local_fields", "lock", "renewed_at", "subscribers"}
        self.renewed_at: dict[int, float] = {}
        self.subscribers: list[Subscriber] = []
        self.revision = 0
        self.compacted_revision = 0
        self.next_lease = 1
        self.kvs: dict[str, tuple[bytes, int, int, int, int]] = {}
        self.leases: dict[int, LeaseRecord] = {}
        self.history: list[WatchEvent] = []
        self.requests: OrderedDict[str, Any] = OrderedDict()

    # --- snapshots: only the replicated part travels --------------------------------------

    def _serialize(self) -> dict[str, Any]:
        data: dict[str, Any] = super()._serialize()
        return {k: v for k, v in data.items() if k not in self._local_fields}

    def _deserialize(self, data: dict[str, Any]) -> None:
        with self.lock:
            super()._deserialize(data)
            # A restored lease is counted from now: later than its real renewal, so safe.
            now = time.monotonic()
            self.renewed_at = dict.fromkeys(self.leases, now)

    # --- commands (applied on every member, in log order) ---------------------------------

    @replicated  # type: ignore[untyped-decorator]
    def cmd_barrier(self) -> int:
        return self.revision

    @replicated  # type: ignore[untyped-decorator]
    def cmd_txn(
        self, req_id: str, compare: list[CmpWire], success: list[OpWire], failure: list[OpWire]
    ) -> TxnOutcome | tuple[str, int]:
        check_txn(req_id, compare, success, failure)  # before anything changes
        with self.lock:
            if req_id and req_id in self.requests:
                return self.requests[req_id]  # type: ignore[no-any-return]
            ok = all(self._holds(c) for c in compare)
            ops = success if ok else failure
            try:
                outcome: TxnOutcome | tuple[str, int] = self._run_ops(ok, ops)
            except LeaseNotFound as exc:
                outcome = ("lease_not_found", exc.lease)
            if req_id:  # reads carry no id: nothing to deduplicate
                self._remember(req_id, outcome)
            return outcome

    @replicated  # type: ignore[untyped-decorator]
    def cmd_grant(self, req_id: str, ttl: float) -> tuple[int, float]:
        check_id(req_id)
        check_ttl(ttl)
        with self.lock:
            if req_id in self.requests:
                return self.requests[req_id]  # type: ignore[no-any-return]
            lease_id = self.next_lease
            self.next_lease += 1
            self.leases[lease_id] = LeaseRecord(ttl=ttl)
            self.renewed_at[lease_id] = time.monotonic()
            self._remember(req_id, (lease_id, ttl))
            return lease_id, ttl

    @replicated  # type: ignore[untyped-decorator]
    def cmd_keepalive(self, lease_id: int) -> float:
        check_lease_id(lease_id)
        with self.lock:
            record = self.leases.get(lease_id)
            if record is None:
                return 0.0
            record.seq += 1
            self.renewed_at[lease_id] = time.monotonic()
            return record.ttl

    @replicated  # type: ignore[untyped-decorator]
    def cmd_revoke(self, lease_id: int) -> int:
        check_lease_id(lease_id)
        with self.lock:
            self._drop_lease(lease_id)
            return self.revision

    @replicated  # type: ignore[untyped-decorator]
    def cmd_expire(self, lease_id: int, seq: int) -> bool:
        check_lease_id(lease_id)
        check_lease_id(seq)
        with self.lock:
            record = self.leases.get(lease_id)
            if record is None or record.seq != seq:
                return False  # renewed (or gone) since the leader decided: keep it
            self._drop_lease(lease_id)
            return True

    # --- queries from the event loop thread ------------------------------------------------

    def renewed_ago(self, lease_id: int, now: float) -> float | None:
        """Seconds since this member applied the lease's last grant or renewal."""
        with self.lock:
            renewed = self.renewed_at.get(lease_id)
        return None if renewed is None else now - renewed

    def due_leases(self, now: float) -> list[tuple[int, int]]:
        """(lease, seq) of every lease this member counts as expired at ``now``."""
        due: list[tuple[int, int]] = []
        with self.lock:
            for lease_id, record in self.leases.items():
                renewed = self.renewed_at.setdefault(lease_id, now)
                if now - renewed >= record.ttl:
                    due.append((lease_id, record.seq))
        return due

    def subscribe(self, callback: Subscriber, start_revision: int | None) -> list[WatchEvent]:
        """Register ``callback`` for future revisions; return the kept history from
        ``start_revision`` on, atomically with the registration so nothing falls between.
        Raises ValueError if that history was compacted away."""
        with self.lock:
            self.subscribers.append(callback)
            if start_revision is None or start_revision > self.revision:
                return []
            if start_revision <= self.compacted_revision:
                self.subscribers.remove(callback)
                raise ValueError(self.compacted_revision)
            return [e for e in self.history if e.revision >= start_revision]

    def unsubscribe(self, callback: Subscriber) -> None:
        with self.lock:
            if callback in self.subscribers:
                self.subscribers.remove(callback)

    # --- helpers (called with the lock held) -----------------------------------------------

    def _remember(self, req_id: str, outcome: Any) -> None:
        self.requests[req_id] = outcome
        while len(self.requests) > REQUEST_CACHE_LIMIT:
            self.requests.popitem(last=False)

    def _kv(self, key: str) -> KV | None:
        entry = self.kvs.get(key)
        if entry is None:
            return None
        value, create, mod, version, lease = entry
        return KV(key, value, create, mod, version, lease)

    def _holds(self, cmp: CmpWire) -> bool:
        key, target, op, operand = cmp
        entry = self.kvs.get(key)
        if target == "value":
            actual: bytes | int = entry[0] if entry else b""
        else:
            actual = entry[_TARGETS[target]] if entry else 0
        if op == "==":
            return actual == operand
        if op == "!=":
            return actual != operand
        if op == "<":
            return actual < operand  # type: ignore[operator]
        return actual > operand  # type: ignore[operator]

    def _keys(self, key: str, prefix: bool) -> list[str]:
        if not prefix:
            return [key] if key in self.kvs else []
        return sorted(k for k in self.kvs if k.startswith(key))

    def _run_ops(self, ok: bool, ops: list[OpWire]) -> TxnOutcome:
        for kind, _key, _arg, lease in ops:
            if kind == "put" and lease and lease not in self.leases:
                raise LeaseNotFound(lease)
        rev = self.revision + 1
        events: list[WatchEvent] = []
        responses: list[Any] = []
        for kind, key, arg, lease in ops:
            if kind == "put":
                events.append(self._put(rev, key, arg, lease))
                responses.append(None)
            elif kind == "del":
                keys = self._keys(key, arg)
                events.extend(self._delete(rev, k) for k in keys)
                responses.append(len(keys))
            else:
                kvs = (self._kv(k) for k in self._keys(key, arg))
                responses.append(tuple(kv for kv in kvs if kv is not None))
        if events:
            self._publish(rev, events)
        return ok, self.revision, tuple(responses)

    def _put(self, rev: int, key: str, value: bytes, lease: int) -> WatchEvent:
        old = self.kvs.get(key)
        if old is not None and old[4] and old[4] in self.leases:
            self.leases[old[4]].keys.discard(key)
        create, version = (old[1], old[3] + 1) if old else (rev, 1)
        self.kvs[key] = (value, create, rev, version, lease)
        if lease:
            self.leases[lease].keys.add(key)
        return WatchEvent("put", KV(key, value, create, rev, version, lease))

    def _delete(self, rev: int, key: str) -> WatchEvent:
        _value, create, _mod, _version, lease = self.kvs.pop(key)
        if lease and lease in self.leases:
            self.leases[lease].keys.discard(key)
        return WatchEvent("delete", KV(key, b"", create, rev, 0, 0))

    def _drop_lease(self, lease_id: int) -> None:
        record = self.leases.pop(lease_id, None)
        self.renewed_at.pop(lease_id, None)
        if record is None or not record.keys:
            return
        rev = self.revision + 1
        events = [self._delete(rev, k) for k in sorted(record.keys) if k in self.kvs]
        if events:
            self._publish(rev, events)

    def _publish(self, rev: int, events: list[WatchEvent]) -> None:
        self.revision = rev
        self.history.extend(events)
        if len(self.history) > HISTORY_LIMIT:
            # Trim whole revisions only, so a kept revision always has all of its events.
            cut = len(self.history) - HISTORY_LIMIT
            self.compacted_revision = self.history[cut - 1].revision
            while cut < len(self.history) and self.history[cut].revision <= self.compacted_revision:
                cut += 1
            del self.history[:cut]
        for callback in list(self.subscribers):
            callback(events)


def cmp_wire(cmp: Cmp) -> CmpWire:
    return (cmp.key, cmp.target, cmp.op, cmp.operand)


def op_wire(op: Op) -> OpWire:
    if isinstance(op, Put):
        return ("put", op.key, op.value, op.lease)
    if isinstance(op, Delete):
        return ("del", op.key, op.prefix, None)
    return ("get", op.key, op.prefix, None)
