"""What a backup of a cluster holds, and the typed form a restore reads back.

A backup of a cluster is these objects:

- ``cluster/config.toml``: the config as stored (``config apply``'s text). It names secrets
  only by path (`secret_file`, `key_file`, ...): the schema refuses an inline secret, so no
  secret value is ever in a backup;
- ``cluster/runtime.json``: run-time node flags, moves and bans, target roles, fail counts,
  fenced marks;
- ``cluster/events.jsonl``: the event log, one event per line;
- ``sessions/<store>``: each session store's snapshot (`session_seam`), at one epoch.

All of the cluster's records come from one read of the key space through the cluster store
(`ClusterStore.records`), never from raw keys; the manifest records that read's revision and
each session store's epoch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hakeeper.backup.errors import CorruptObject
from hakeeper.backup.manifest import ClusterIdentity
from hakeeper.backup.session_seam import (
    SESSION_PREFIX,
    SessionSnapshotter,
    StoreSnapshot,
    session_object,
)
from hakeeper.errors import ConfigError, HakeeperError
from hakeeper.model.events import Event, from_json, to_json
from hakeeper.model.records import FencedMark, NodeFlags
from hakeeper.model.state import FailCount, RuntimeConstraint
from hakeeper.runtime.store import ClusterStore
from hakeeper.runtime.store_records import ClusterRecords, RuntimeRecords

CONFIG_OBJECT = "cluster/config.toml"
RUNTIME_OBJECT = "cluster/runtime.json"
EVENTS_OBJECT = "cluster/events.jsonl"
CLUSTER_OBJECTS = (CONFIG_OBJECT, RUNTIME_OBJECT, EVENTS_OBJECT)

#: What a restore holds in memory of each cluster object, at most: far above a real
#: cluster's (a config of a few KiB, the event log trimmed to some thousands of lines).
MAX_CLUSTER_OBJECT = {CONFIG_OBJECT: 4 << 20, RUNTIME_OBJECT: 16 << 20, EVENTS_OBJECT: 64 << 20}
_CHUNK = 1 << 20

# The names the cluster file allows (config/checks.py): a hostile object cannot reach keys
# outside the record's own prefix with a "/" or a control character.
_Name = Annotated[str, Field(max_length=253, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Flags(_Doc):
    standby: bool = False
    maintenance: bool = False


class _Constraint(_Doc):
    kind: Literal["move", "ban"]
    resource: _Name
    node: _Name


class _FailCount(_Doc):
    resource: _Name
    node: _Name
    count: Annotated[int, Field(ge=0)]
    last_failure: float


class _Fenced(_Doc):
    by: Annotated[str, Field(max_length=1024)]
    ts: float
    suspected: bool = False


class RuntimeDoc(_Doc):
    """``cluster/runtime.json``: bounded, unknown keys refused."""

    node_flags: Annotated[dict[_Name, _Flags], Field(max_length=10_000)] = {}
    constraints: Annotated[list[_Constraint], Field(max_length=100_000)] = []
    target_roles: Annotated[
        dict[_Name, Literal["started", "stopped", "unpromoted"]], Field(max_length=100_000)
    ] = {}
    failcounts: Annotated[list[_FailCount], Field(max_length=100_000)] = []
    fenced: Annotated[dict[_Name, _Fenced], Field(max_length=10_000)] = {}

    @classmethod
    def of(cls, rt: RuntimeRecords) -> RuntimeDoc:
        return cls(
            node_flags={n: _Flags(standby=f.standby, maintenance=f.maintenance)
                        for n, f in rt.node_flags.items()},
            constraints=[_Constraint(kind=c.kind, resource=c.resource, node=c.node)
                         for c in rt.constraints],
            target_roles=dict(rt.target_roles),
            failcounts=[_FailCount(resource=f.resource, node=f.node, count=f.count,
                                   last_failure=f.last_failure) for f in rt.failcounts],
            fenced={n: _Fenced(by=m.by, ts=m.ts, suspected=m.suspected)
                    for n, m in rt.fenced.items()},
        )  # fmt: skip

    def records(self) -> RuntimeRecords:
        return RuntimeRecords(
            node_flags={n: NodeFlags(f.standby, f.maintenance) for n, f in self.node_flags.items()},
            constraints=tuple(RuntimeConstraint(c.kind, c.resource, c.node)
                              for c in self.constraints),
            target_roles=dict(self.target_roles),
            failcounts=tuple(FailCount(f.resource, f.node, f.count, f.last_failure)
                             for f in self.failcounts),
            fenced={n: FencedMark(m.by, m.ts, m.suspected) for n, m in self.fenced.items()},
        )  # fmt: skip


def encode_cluster_objects(records: ClusterRecords) -> dict[str, bytes]:
    """The three cluster objects of ``records`` (which must hold a stored config)."""
    if records.config is None:
        raise HakeeperError(
            "the cluster has no stored config yet (no agent has started): nothing to back up"
        )
    events = "".join(to_json(e) + "\n" for e in records.events)
    return {
        CONFIG_OBJECT: records.config.encode("utf-8"),
        RUNTIME_OBJECT: RuntimeDoc.of(records.runtime).model_dump_json(indent=1).encode(),
        EVENTS_OBJECT: events.encode("utf-8"),
    }


def decode_cluster_objects(
    objects: Mapping[str, bytes], identity: str, revision: int
) -> ClusterRecords:
    """The records of a backup's cluster objects; `CorruptObject` naming the object when one
    does not parse (a backup written by this format always does)."""
    try:
        config = objects[CONFIG_OBJECT].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptObject(f"object {CONFIG_OBJECT!r} is not UTF-8 text ({exc})") from None
    try:
        runtime = RuntimeDoc.model_validate_json(objects[RUNTIME_OBJECT]).records()
    except ValidationError as exc:
        raise CorruptObject(f"object {RUNTIME_OBJECT!r} does not parse: {exc}") from None
    events: list[Event] = []
    try:
        lines = objects[EVENTS_OBJECT].decode("utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            events.append(from_json(line, f"{EVENTS_OBJECT}:{number}"))
    except (UnicodeDecodeError, ConfigError) as exc:
        raise CorruptObject(f"object {EVENTS_OBJECT!r} does not parse: {exc}") from None
    return ClusterRecords(config, runtime, tuple(events), identity, revision)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), _CHUNK):
        yield data[start : start + _CHUNK]


@dataclass(frozen=True, slots=True)
class ClusterContent:
    """What one backup of a cluster writes: an `ObjectSource` with the manifest's fields."""

    identity: ClusterIdentity
    revision: int
    cluster_objects: Mapping[str, bytes]
    sessions: Mapping[str, StoreSnapshot]
    #: (key, why) of the records left out because they do not decode.
    refused: tuple[tuple[str, str], ...] = ()

    @property
    def epochs(self) -> dict[str, int]:
        return {session_object(name): snap.epoch for name, snap in self.sessions.items()}

    def object_names(self) -> Sequence[str]:
        return (*self.cluster_objects, *(session_object(s) for s in sorted(self.sessions)))

    def chunks(self, name: str) -> AsyncIterator[bytes]:
        if name in self.cluster_objects:
            return _once(self.cluster_objects[name])
        store = name.removeprefix(SESSION_PREFIX)
        return self.sessions[store].chunks()


async def collect_cluster(
    store: ClusterStore, cluster_name: str, sessions: SessionSnapshotter | None = None
) -> ClusterContent:
    """Read the cluster's records in one revision, make its identity if it has none, and
    take each session store's snapshot (each at one epoch and sequence: the session
    store's own consistent snapshot, never a copy of concurrent writes)."""
    keeper = store.records()
    cluster_id = await keeper.identity()
    records = await keeper.read()
    snaps: dict[str, StoreSnapshot] = {}
    if sessions is not None:
        for name in sessions.store_names():
            snaps[name] = await sessions.snapshot(name)
    return ClusterContent(
        identity=ClusterIdentity(name=cluster_name, cluster_id=cluster_id),
        revision=records.revision,
        cluster_objects=encode_cluster_objects(records),
        sessions=snaps,
        refused=records.refused,
    )
