"""Restoring a backup into a cluster: check everything first, then write.

`prepare_restore` reads the whole backup back (the manifest's format, key, authentication
and cluster; every object's every chunk, size and SHA-256), decodes the cluster's records and
rewrites the node addresses of the config; it writes nothing, so a corrupted, truncated,
foreign, wrongly keyed or newer-format backup fails here, with the error naming the problem,
and changes nothing. `apply_restore` then refuses a live cluster unless forced, reseeds each
session store through the seam at the epoch the backup recorded, and seeds the key space
through the cluster store in guarded transactions.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from hakeeper.backup.cluster_state import (
    CLUSTER_OBJECTS,
    MAX_CLUSTER_OBJECT,
    decode_cluster_objects,
)
from hakeeper.backup.errors import ForeignBackup, MissingObject, TruncatedObject
from hakeeper.backup.manifest import Manifest, Trust
from hakeeper.backup.node_map import NodeTarget, rewrite_node_addresses
from hakeeper.backup.progress import Progress
from hakeeper.backup.reader import BackupReader, open_backup
from hakeeper.backup.session_seam import SESSION_PREFIX, SessionReseeder
from hakeeper.backup.store import BackupStore
from hakeeper.config.loader import spec_from_text
from hakeeper.errors import HakeeperError, NoQuorum
from hakeeper.runtime.store import ClusterStore
from hakeeper.runtime.store_records import ClusterRecords


class LiveCluster(HakeeperError):
    """The target cluster holds state a restore would overwrite."""


@dataclass(frozen=True, slots=True)
class RestorePlan:
    """A backup read back in full and found sound; nothing written yet."""

    reader: BackupReader
    records: ClusterRecords

    @property
    def manifest(self) -> Manifest:
        return self.reader.manifest

    @property
    def session_stores(self) -> tuple[str, ...]:
        return tuple(
            o.name.removeprefix(SESSION_PREFIX)
            for o in self.manifest.objects
            if o.name.startswith(SESSION_PREFIX)
        )


async def _read_whole(reader: BackupReader, name: str, limit: int) -> bytes:
    entry = reader.manifest.entry(name)
    if entry is None:
        raise MissingObject(
            f"backup {reader.manifest.backup_id} has no object {name!r}: it is not a backup "
            "of a cluster (use one that `hakeeper backup create` wrote)"
        )
    if entry.size > limit:
        raise TruncatedObject(f"object {name!r} is {entry.size} bytes; at most {limit} are read")
    parts = [chunk async for chunk in reader.read_object(name)]
    return b"".join(parts)


async def prepare_restore(
    store: BackupStore,
    backup_id: str,
    trust: Trust,
    *,
    cluster_name: str | None,
    node_map: Mapping[str, NodeTarget],
    progress: Progress | None = None,
) -> RestorePlan:
    """Read and check all of ``backup_id``; the records to restore (config rewritten by
    ``node_map``). Raises the first problem as its `BackupError`; writes nothing.
    ``cluster_name``: the cluster it must be of (None: a new site without a cluster file,
    which takes the backup's own)."""
    reader = await open_backup(store, backup_id, trust, progress=progress)
    manifest = reader.manifest
    cluster_name = cluster_name or manifest.cluster.name
    if manifest.cluster.name != cluster_name:
        raise ForeignBackup(
            f"backup {backup_id} is of cluster {manifest.cluster.describe()}, not of "
            f"{cluster_name!r}: restore it with that cluster's file, or pick a backup of "
            f"{cluster_name!r}"
        )
    objects = {
        name: await _read_whole(reader, name, MAX_CLUSTER_OBJECT[name]) for name in CLUSTER_OBJECTS
    }
    for entry in manifest.objects:
        if entry.name.startswith(SESSION_PREFIX):
            # Read to the end only to check it: the reseed reads it again, chunk by chunk.
            async for _ in reader.read_object(entry.name):
                pass
    records = decode_cluster_objects(objects, manifest.cluster.cluster_id, manifest.coord_revision)
    config = rewrite_node_addresses(records.config or "", node_map)
    spec = spec_from_text(config, f"the config of backup {backup_id}")
    if spec.options.name != cluster_name:
        raise ForeignBackup(f"backup {backup_id}'s config names cluster {spec.options.name!r}")
    return RestorePlan(reader, replace(records, config=config))


@dataclass(frozen=True, slots=True)
class RestoreSummary:
    backup_id: str
    cluster: str
    records: int
    events: int
    sessions: Mapping[str, int]
    sessions_skipped: tuple[str, ...]
    config_written: bool
    seconds: float

    def lines(self) -> tuple[str, ...]:
        lines = [
            f"restored backup {self.backup_id} into cluster {self.cluster}",
            f"  config:   {'written' if self.config_written else 'already in force'}",
            f"  records:  {self.records} run-time records, {self.events} events",
        ]
        for store, keys in sorted(self.sessions.items()):
            lines.append(f"  sessions: {store}: {keys} keys reseeded")
        if self.sessions_skipped:
            lines.append(
                f"  sessions: NOT reseeded (no session store wired here): "
                f"{', '.join(self.sessions_skipped)}"
            )
        lines.append(f"  took:     {self.seconds:.2f} s")
        return tuple(lines)


def _live_reasons(current: ClusterRecords, plan: RestorePlan) -> list[str]:
    reasons: list[str] = []
    if not current.runtime.empty:
        reasons.append(f"it holds {current.runtime.count()} run-time record(s)")
    if current.config is not None and current.config != plan.records.config:
        reasons.append("it runs another config than the backup's")
    return reasons


async def apply_restore(
    plan: RestorePlan,
    store: ClusterStore,
    *,
    reseeder: SessionReseeder | None,
    force: bool,
) -> RestoreSummary:
    """Write ``plan`` into the cluster behind ``store``. Refuses (writing nothing) a live
    cluster (run-time records, another config) of another identity, and one of the same
    identity unless ``force``, which replaces its run-time records. A fresh cluster takes
    the backup's identity."""
    started = time.monotonic()
    manifest = plan.manifest
    if not await store.has_quorum():
        raise NoQuorum("the cluster to restore into has no quorum: start a majority of its nodes")
    keeper = store.records()
    current = await keeper.read()
    reasons = _live_reasons(current, plan)
    # A fresh cluster (started for this restore, perhaps backed up once already) takes the
    # backup's identity; one that holds state of its own is another cluster: never.
    if reasons and current.identity not in (None, manifest.cluster.cluster_id):
        raise ForeignBackup(
            f"backup {manifest.backup_id} is of cluster {manifest.cluster.describe()}; the "
            f"cluster here is another (id {current.identity}) and holds state of its own "
            f"({'; '.join(reasons)}): restore into fresh data directories"
        )
    if reasons and not force:
        raise LiveCluster(
            f"refusing to overwrite a live cluster ({'; '.join(reasons)}); nothing was "
            "restored. Restore into fresh data directories, or add --force to replace its "
            "run-time state with the backup's"
        )
    write_config = current.config != plan.records.config
    base = None
    if write_config:
        stored = await store.config_record()
        base = 0 if stored is None else stored.revision
    # A node that is up again on its new machine has probed what it runs: the backup's
    # fenced mark of it is about the old machine, and would hide its resources.
    members = (await store.live_instances()).members
    runtime = plan.records.runtime
    kept = {n: m for n, m in runtime.fenced.items() if n not in members}
    records = replace(plan.records, runtime=replace(runtime, fenced=kept))
    # The session stores first, while the cluster still runs its config alone: the restored
    # flags and bans would move a store's primary (a standby node) in the middle of its
    # reseed. A reseed holds on a majority before it returns, so a later move keeps it.
    reseeded: dict[str, int] = {}
    skipped: list[str] = []
    for name in plan.session_stores:
        if reseeder is None:
            skipped.append(name)
            continue
        object_name = f"{SESSION_PREFIX}{name}"
        epoch = manifest.epoch_of(object_name) or 0
        reseeded[name] = await reseeder.reseed(name, epoch, plan.reader.read_object(object_name))
    await keeper.seed(records, config_base=base, replace=force)
    return RestoreSummary(
        backup_id=manifest.backup_id,
        cluster=manifest.cluster.describe(),
        records=records.runtime.count(),
        events=len(plan.records.events),
        sessions=reseeded,
        sessions_skipped=tuple(skipped),
        config_written=write_config,
        seconds=time.monotonic() - started,
    )
