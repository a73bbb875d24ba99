"""Listing a store's backups and pruning them by a retention policy.

Listing reads each complete backup's manifest without the key (dates, sizes, counts, the
cluster), newest first; a manifest that cannot be read is listed apart with the reason,
never pruned. Backups in progress are listed apart too, and never pruned: only complete
backups reach the retention decision.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from hakeeper.backup.errors import BackupError, BackupNotFound
from hakeeper.backup.manifest import ClusterIdentity, peek_manifest
from hakeeper.backup.retention import RetentionPolicy, newest_first, to_prune
from hakeeper.backup.store import BackupStore
from hakeeper.backup.writer import utc_now


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """One complete backup as a listing shows it."""

    backup_id: str
    created_at: datetime
    age: timedelta
    size: int
    objects: int
    cluster: ClusterIdentity
    encrypted: bool


@dataclass(frozen=True, slots=True)
class UnreadableBackup:
    backup_id: str
    problem: str


@dataclass(frozen=True, slots=True)
class BackupListing:
    """A store's backups: complete ones newest first, unreadable ones, ones in progress."""

    store: str
    backups: tuple[BackupInfo, ...]
    unreadable: tuple[UnreadableBackup, ...]
    in_progress: tuple[str, ...]

    @property
    def newest(self) -> BackupInfo | None:
        return self.backups[0] if self.backups else None


async def list_backups(
    store: BackupStore, *, now: Callable[[], datetime] = utc_now
) -> BackupListing:
    at = now()
    infos: list[BackupInfo] = []
    unreadable: list[UnreadableBackup] = []
    for backup_id in sorted(await store.backup_ids()):
        try:
            manifest = peek_manifest(await store.read_manifest(backup_id), backup_id)
        except BackupNotFound:
            continue  # deleted between the listing and the read
        except BackupError as exc:
            unreadable.append(UnreadableBackup(backup_id, str(exc)))
            continue
        infos.append(
            BackupInfo(
                backup_id=backup_id,
                created_at=manifest.created_at,
                age=at - manifest.created_at,
                size=manifest.total_size,
                objects=len(manifest.objects),
                cluster=manifest.cluster,
                encrypted=manifest.encryption is not None,
            )
        )
    return BackupListing(
        store=store.description,
        backups=tuple(newest_first(infos)),
        unreadable=tuple(unreadable),
        in_progress=tuple(sorted(await store.in_progress())),
    )


@dataclass(frozen=True, slots=True)
class PruneResult:
    deleted: tuple[str, ...]
    kept: tuple[str, ...]


async def prune(
    store: BackupStore,
    policy: RetentionPolicy,
    *,
    now: Callable[[], datetime] = utc_now,
    dry_run: bool = False,
) -> PruneResult:
    """Delete the complete backups ``policy`` prunes (none when ``dry_run``)."""
    listing = await list_backups(store, now=now)
    doomed = to_prune(listing.backups, policy, now())
    if not dry_run:
        for backup_id in doomed:
            with contextlib.suppress(BackupNotFound):  # another pruner was first
                await store.delete(backup_id)
    kept = tuple(b.backup_id for b in listing.backups if b.backup_id not in doomed)
    return PruneResult(doomed, kept)
