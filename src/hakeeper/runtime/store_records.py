"""The cluster's records worth keeping, read as one and seeded back: what a backup holds of
the key space, and what a restore writes into a fresh one.

Handed out by `hakeeper.runtime.store.ClusterStore.records` (the store stays the only owner
of the key layout). What is kept is what an operator or the cluster decided and cannot be
derived again: the stored config, the run-time node flags, moves and bans, target roles,
fail counts, fenced marks, the event log, and the cluster's identity. What is not kept is
what a new cluster rebuilds by itself: members and the controller (leased), assignments
(the controller writes them from the rest) and instance statuses (each node probes).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hakeeper.coord.base import KV, Cmp, Coordinator, Delete, Op, Put
from hakeeper.errors import CompareFailed, ConfigError
from hakeeper.model.events import Event, from_json, to_json
from hakeeper.model.records import FencedMark, NodeFlags
from hakeeper.model.roles import TargetRole
from hakeeper.model.state import FailCount, RuntimeConstraint
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.record_codec import (
    DECODE_ERRORS,
    decode_constraint,
    decode_failcount,
    decode_fenced,
    decode_flags,
    decode_target_role,
    encode_constraint,
    encode_failcount,
    encode_fenced,
    encode_flags,
    encode_target_role,
)
from hakeeper.runtime.refusals import log_refused

#: Operations per seeding transaction: a large event log goes in several, each well under
#: what one Raft log entry or one etcd request carries.
SEED_BATCH = 128


@dataclass(frozen=True, slots=True)
class RuntimeRecords:
    """The run-time decisions of operators and the cluster, by record."""

    node_flags: Mapping[str, NodeFlags] = field(default_factory=dict)
    constraints: tuple[RuntimeConstraint, ...] = ()
    target_roles: Mapping[str, TargetRole] = field(default_factory=dict)
    failcounts: tuple[FailCount, ...] = ()
    fenced: Mapping[str, FencedMark] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (
            self.node_flags or self.constraints or self.target_roles or self.failcounts
            or self.fenced
        )  # fmt: skip

    def count(self) -> int:
        return (
            len(self.node_flags) + len(self.constraints) + len(self.target_roles)
            + len(self.failcounts) + len(self.fenced)
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ClusterRecords:
    """One consistent read of what a backup keeps of the key space."""

    config: str | None
    runtime: RuntimeRecords
    events: tuple[Event, ...]
    identity: str | None
    revision: int
    #: (key, why) of each record left out because it does not decode (rule 5).
    refused: tuple[tuple[str, str], ...] = ()


class RecordKeeper:
    """Reads the records worth keeping in one revision, and seeds them into a key space."""

    def __init__(self, coord: Coordinator, keys: KeySpace) -> None:
        self._coord = coord
        self._keys = keys

    async def read(self) -> ClusterRecords:
        """Every kept record in one read (one revision): a backup is never torn across a
        concurrent ``node standby`` or ``resource ban``. A config or identity that is not
        UTF-8 raises (a backup without them restores nothing); any other record that does
        not decode is left out, logged and listed in ``refused``, as every live reader
        leaves it out: one torn event must not stop every scheduled backup."""
        kvs = await self._coord.range(self._keys.root)
        return self._decode(kvs, max((kv.mod_revision for kv in kvs), default=0))

    def _decode(self, kvs: Sequence[KV], revision: int) -> ClusterRecords:
        keys = self._keys
        config: str | None = None
        identity: str | None = None
        kept = _Kept(keys)
        refused: list[tuple[str, str]] = []
        for kv in kvs:
            if kv.key == keys.config:
                config = kv.value.decode("utf-8")
            elif kv.key == keys.identity:
                identity = kv.value.decode("utf-8")
            else:
                try:
                    kept.add(kv)
                except (ConfigError, *DECODE_ERRORS) as exc:
                    refused.append((kv.key, str(exc)))
                    log_refused(
                        kv.key,
                        str(exc),
                        "left out of this backup, as the cluster leaves it out where it reads it",
                    )
        return ClusterRecords(
            config, kept.runtime(), tuple(kept.events), identity, revision, tuple(refused)
        )

    async def identity(self) -> str:
        """The cluster's id: made (random, 128 bits) by the first caller, the same after."""
        key = self._keys.identity
        made = secrets.token_hex(16)
        await self._coord.txn([Cmp(key, "create_revision", "==", 0)], [Put(key, made.encode())])
        kv = await self._coord.get(key)
        return made if kv is None else kv.value.decode("utf-8")

    async def seed(self, records: ClusterRecords, *, config_base: int | None, replace: bool) -> int:
        """Write ``records`` into this key space; the number of records written.

        ``config_base``: the stored config's revision the caller saw (0: none), so a config
        applied meanwhile is not overwritten (`CompareFailed`, nothing written); None leaves
        the config as it is. ``replace``: delete the run-time records there first (a forced
        restore); without it the caller checked that there were none. Events are added to the log
        under their own time, so the log reads in order across the restore."""
        keys = self._keys
        ops: list[Op] = []
        if replace:
            for prefix in (
                keys.node_flags, keys.constraints, keys.target_roles, keys.failcounts,
                keys.fenced_marks,
            ):  # fmt: skip
                ops.append(Delete(prefix, prefix=True))
        rt = records.runtime
        ops += [Put(keys.node_flag(n), encode_flags(f)) for n, f in sorted(rt.node_flags.items())]
        ops += [
            Put(keys.constraint(c.resource, c.node), encode_constraint(c.kind))
            for c in rt.constraints
        ]
        ops += [
            Put(keys.target_role(r), encode_target_role(role))
            for r, role in sorted(rt.target_roles.items())
        ]
        ops += [Put(keys.failcount(f.node, f.resource), encode_failcount(f)) for f in rt.failcounts]
        ops += [Put(keys.fenced(n), encode_fenced(m)) for n, m in sorted(rt.fenced.items())]
        if records.identity is not None:
            ops.append(Put(keys.identity, records.identity.encode("utf-8")))
        for index, event in enumerate(records.events):
            key = f"{keys.events}{int(event.ts * 1e6):016d}-restore-{index}"
            ops.append(Put(key, to_json(event).encode("utf-8")))
        first, rest = ops[:SEED_BATCH], ops[SEED_BATCH:]
        if config_base is not None and records.config is not None:
            # The config goes with the first batch, guarded: if another was applied since
            # the caller looked, nothing at all is written.
            guard = [Cmp(keys.config, "mod_revision", "==", config_base)]
            result = await self._coord.txn(
                guard, [Put(keys.config, records.config.encode("utf-8")), *first]
            )
            if not result.succeeded:
                raise CompareFailed(
                    "the stored config changed while the restore ran (someone applied one): "
                    "nothing was restored; run the restore again"
                )
        elif first:
            await self._coord.txn([], first)
        for start in range(0, len(rest), SEED_BATCH):
            await self._coord.txn([], rest[start : start + SEED_BATCH])
        return rt.count() + len(records.events)


@dataclass
class _Kept:
    """The records of one read, by kind, as they decode."""

    keys: KeySpace
    flags: dict[str, NodeFlags] = field(default_factory=dict)
    constraints: list[RuntimeConstraint] = field(default_factory=list)
    roles: dict[str, TargetRole] = field(default_factory=dict)
    failcounts: list[FailCount] = field(default_factory=list)
    fenced: dict[str, FencedMark] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    def add(self, kv: KV) -> None:
        """Decode one record into its kind (raises when it does not decode)."""
        keys, key = self.keys, kv.key
        if key.startswith(keys.node_flags):
            self.flags[key[len(keys.node_flags) :]] = decode_flags(kv.value)
        elif key.startswith(keys.constraints):
            resource, _, node = key[len(keys.constraints) :].partition("/")
            self.constraints.append(RuntimeConstraint(decode_constraint(kv.value), resource, node))
        elif key.startswith(keys.target_roles):
            self.roles[key[len(keys.target_roles) :]] = decode_target_role(kv.value)
        elif key.startswith(keys.failcounts):
            node, _, resource = key[len(keys.failcounts) :].partition("/")
            self.failcounts.append(decode_failcount(kv.value, resource, node))
        elif key.startswith(keys.fenced_marks):
            self.fenced[key[len(keys.fenced_marks) :]] = decode_fenced(kv.value)
        elif key.startswith(keys.events):
            self.events.append(from_json(kv.value.decode("utf-8"), kv.key))

    def runtime(self) -> RuntimeRecords:
        return RuntimeRecords(
            node_flags=self.flags,
            constraints=tuple(sorted(self.constraints, key=lambda c: (c.resource, c.node))),
            target_roles=self.roles,
            failcounts=tuple(sorted(self.failcounts, key=lambda f: (f.resource, f.node))),
            fenced=self.fenced,
        )
