"""The coordination contract: etcd's data model, small enough to run on embedded Raft.

A key space with one global revision, leases, compare-and-set transactions and prefix
watches. Every backend (``raft``, ``etcd``) implements `Coordinator` with the same meaning;
``tests/coord/test_contract.py`` holds them to it against real processes.

Three outcomes per call, never blurred:

* success — the call returns its value;
* lost race — ``txn`` returns ``TxnResult(succeeded=False)``, ``keepalive`` returns False;
* engine trouble — an exception from `hakeeper.errors.CoordError` (``NoQuorum`` when the engine
  answers but cannot commit, ``Unreachable`` when nothing answers in time).

A write that raised has an unknown outcome: it may still be applied later (it reached a
leader that committed it after the caller gave up). Re-read before retrying, or make the
retry conditional (``Cmp(key, "create_revision", "==", 0)``, a revision compare) so that it
cannot apply twice.

Atomicity and timing:

* Each ``txn`` is atomic and linearizable: its compares and its ops see one revision; a txn
  that writes anything advances the global revision by exactly one.
* Revisions never go backwards, across leader changes and restarts; they are fencing tokens.
* A lease lives at least its granted TTL after the engine applied its last renewal, never
  less; it may live longer (a leader change). Its expiry deletes its keys in one revision.
* ``watch(prefix, start_revision)`` yields every change under ``prefix`` with revision
  >= ``start_revision`` in revision order, without gaps, across reconnects, or raises
  ``Compacted`` if that history is gone.
* A txn holds at most `MAX_TXN_OPS` compares and operations (etcd's ``--max-txn-ops``
  default); a caller with more work splits it into several txns.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from hakeeper.errors import CompareFailed, CoordError
from hakeeper.model.cluster import ClusterSpec

CmpTarget = Literal["value", "create_revision", "mod_revision", "version", "lease"]
CmpOp = Literal["==", "!=", "<", ">"]
#: Compares plus operations one txn may hold, on every backend (etcd's default limit).
MAX_TXN_OPS = 128


@dataclass(frozen=True, slots=True)
class Lease:
    """A granted lease: its engine id and the TTL the engine actually granted (seconds; etcd
    grants whole seconds, so it may be rounded up from what was asked)."""

    id: int
    ttl: float


@dataclass(frozen=True, slots=True)
class KV:
    """One key as stored: etcd's mvccpb.KeyValue. ``lease`` is 0 when the key has none."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Cmp:
    """A comparison on one key, evaluated inside a txn.

    A missing key compares as value b"", revisions 0, version 0, lease 0 — so
    ``Cmp(key, "create_revision", "==", 0)`` means "key does not exist".
    """

    key: str
    target: CmpTarget
    op: CmpOp
    operand: bytes | int


@dataclass(frozen=True, slots=True)
class Put:
    key: str
    value: bytes
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete ``key``, or every key starting with it when ``prefix`` is true."""

    key: str
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class Get:
    """Read ``key``, or every key starting with it when ``prefix`` is true (sorted by key)."""

    key: str
    prefix: bool = False


Op = Put | Delete | Get


@dataclass(frozen=True, slots=True)
class TxnResult:
    """Outcome of a txn. ``responses`` has one entry per op of the branch taken: the KVs read
    for a `Get`, the number of keys deleted for a `Delete`, and None for a `Put`."""

    succeeded: bool
    revision: int
    responses: tuple[tuple[KV, ...] | int | None, ...] = field(default=())

    def check(self) -> TxnResult:
        """Return self, or raise `CompareFailed` if the compares did not hold."""
        if not self.succeeded:
            raise CompareFailed(
                f"transaction compare failed at revision {self.revision}: another writer "
                "changed the guarded keys first; re-read and retry"
            )
        return self


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change. For a delete, ``kv.value`` is empty and ``kv.mod_revision`` is the revision
    of the delete."""

    type: Literal["put", "delete"]
    kv: KV

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


@runtime_checkable
class Coordinator(Protocol):
    """A consensus-backed key space. Every method has a deadline; none blocks forever."""

    @property
    def backend(self) -> str:
        """The backend's registry name (``raft``, ``etcd``)."""
        ...

    @property
    def min_ttl(self) -> float:
        """Smallest lease TTL (seconds) this engine's election timing can honour."""
        ...

    async def grant(self, ttl: float) -> Lease:
        """Create a lease. Raises `TTLTooShort` when ``ttl < min_ttl``."""
        ...

    async def keepalive(self, lease: Lease) -> bool:
        """Renew ``lease`` for its TTL from now; False once it has expired or was revoked."""
        ...

    async def revoke(self, lease: Lease) -> None:
        """End ``lease`` now and delete its keys; a lease already gone is not an error."""
        ...

    async def lease_renewed_ago(self, lease_id: int, member: str | None = None) -> float | None:
        """Seconds since this engine member applied the lease's last renewal (or its grant),
        on the local clock, without a round trip; None when it cannot tell (the lease is
        unknown here, a non-voting client, or an engine that reports whole seconds only).
        ``member``: the engine member address of the node that renews the lease, where the
        engine's members are the nodes (raft); an engine may count that member's silence
        further back when it knows more about it (a leader that fell).

        A hint for failure suspicion, never a safety bound: confirm it after a linearizable
        read, which makes this member apply every renewal committed before it."""
        ...

    async def get(self, key: str) -> KV | None:
        """Linearizable read of one key."""
        ...

    async def range(self, prefix: str) -> list[KV]:
        """Linearizable read of every key starting with ``prefix``, sorted by key."""
        ...

    async def put(self, key: str, value: bytes, lease: Lease | None = None) -> int:
        """Unconditional write; returns the new revision. Raises `LeaseExpired` if the lease
        is gone."""
        ...

    async def delete(self, key: str, *, prefix: bool = False) -> int:
        """Delete a key (or a prefix); returns how many keys were deleted."""
        ...

    async def txn(
        self, compare: Sequence[Cmp], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        """If every compare holds run ``success``, else ``failure``; atomically."""
        ...

    def watch(self, prefix: str, start_revision: int | None = None) -> AsyncGenerator[WatchEvent]:
        """Changes under ``prefix`` from ``start_revision`` (default: the next revision).

        Close it with ``contextlib.aclosing`` or by cancelling the consuming task."""
        ...

    async def has_quorum(self) -> bool:
        """True if the engine can commit right now; never raises, and answers within about
        two election timeouts even when nothing answers."""
        ...

    async def revision(self) -> int:
        """The current global revision (linearizable)."""
        ...

    async def close(self) -> None:
        """Release connections and background tasks. Idempotent."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class CoordinatorContext:
    """What opening the engine a cluster file names takes; each backend reads its own part.

    ``node`` set: open as that node's voting member (a ``raft`` member keeps its log under
    ``state_dir``); None: as a client. ``ready_timeout`` bounds how long a client waits for
    the engine to be usable (the timing profile is ``spec.timing``); ``scope`` is the key
    prefix the cluster lives under (an ``etcd`` user's credentials are checked against it).
    """

    spec: ClusterSpec
    scope: str
    node: str | None = None
    state_dir: Path | None = None
    ready_timeout: float = 30.0
    #: A new node (``hakeeper agent --join``): a ``raft`` member first joins as a learner and
    #: returns once ``hakeeper node add`` has made it a voter, waiting up to ``join_timeout``.
    join: bool = False
    join_timeout: float = 900.0


class CoordinatorBackend(Protocol):
    """What each backend class registered in `hakeeper.coord.BACKENDS` offers."""

    @property
    def needs_cluster_secret(self) -> bool:
        """Whether its peers prove themselves with ``[coordination] secret_file`` (raft),
        so that nothing may open it without a usable secret file."""
        ...

    async def open_for(self, context: CoordinatorContext) -> Coordinator:
        """A started coordinator for ``context``; `ConfigError` naming the fix when the
        cluster file does not say enough to open it."""


class ChangeInProgress(CoordError):
    """Another membership change is in flight: the group makes one at a time."""


@dataclass(frozen=True, slots=True)
class Members:
    """A group's committed membership.

    ``voters`` is the sorted voter list and ``version`` counts its committed versions;
    ``retired`` holds every address removed, which can never vote again; ``pending`` is the
    one change in flight, ``("add" | "remove", address)``, and ``pending_until`` its
    proposer's deadline (wall clock, seconds since the epoch); ``caught_up`` lists the learners
    that have reported applying the log up to the leader's commit index."""

    voters: tuple[str, ...]
    version: int
    retired: tuple[str, ...] = ()
    pending: tuple[str, str] | None = None
    pending_until: float | None = None
    caught_up: tuple[str, ...] = ()


@runtime_checkable
class MembershipChanges(Protocol):
    """The optional capability of a backend whose hakeeper nodes are its voters (``raft``):
    grow and shrink the voter group one change at a time, each committed through its log.

    Ask for it with ``isinstance(coord, MembershipChanges)``; on etcd, hakeeper nodes are
    clients, so adding one is configuration plus start and etcd's own tools change etcd."""

    async def members(self, timeout: float = 10.0) -> Members:
        """The committed membership (linearizable)."""
        ...

    async def add_member(self, address: str, timeout: float = 60.0) -> Members:
        """Make the learner at ``address`` a voter once it has caught up. Raises
        `ChangeInProgress` while another change is in flight, `EngineMismatch` for a retired
        address, `NoQuorum`/`Unreachable` when the change could not commit in ``timeout``."""
        ...

    async def remove_member(self, address: str, timeout: float = 60.0) -> Members:
        """Remove the voter at ``address`` and retire its address for good."""
        ...

    async def is_retired(self, timeout: float = 10.0) -> bool:
        """True when this member's own address was removed from the group (asked of the
        others: a removed member's own log no longer hears from them); False when it was
        not, or nobody answered within ``timeout``."""
        ...
