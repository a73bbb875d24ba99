"""Scheduled backups: the controller job that takes one backup per ``[backup] schedule``
period for the whole cluster (`hakeeper.runtime.controller_jobs` runs it, only on the
controller), and what the stored config says about backups.

The settings come from the config the cluster runs (the stored one), read at each look, so
a ``config apply`` that changes the schedule or the store takes effect without a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from hakeeper.backup.jobs import take_backup
from hakeeper.backup.session_seam import SessionSnapshotter
from hakeeper.backup.settings import BackupSettings, backup_settings
from hakeeper.config.loader import file_from_text
from hakeeper.config.schema import ClusterFile
from hakeeper.errors import ConfigError
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.events import BackupCreated, Event
from hakeeper.runtime.store import ClusterStore


async def stored_file(store: ClusterStore) -> ClusterFile | None:
    """The cluster file the cluster runs (None before any is stored, or when it is refused:
    then `status` already says why, and nothing is scheduled)."""
    text = await store.stored_config()
    if text is None:
        return None
    try:
        return file_from_text(text, "stored config")
    except ConfigError:
        return None


async def stored_settings(cf: ClusterFile) -> BackupSettings:
    """The backup settings of ``cf`` (in a thread: key files are read, and an S3 store's
    client loads its service model)."""
    secret = Path(cf.coordination.secret_file)
    return await asyncio.to_thread(backup_settings, cf.backup, cluster_secret=secret)


class ScheduledBackup:
    """A `ControllerJob`: one backup of the cluster each ``[backup] schedule``."""

    name = "backup"

    def __init__(
        self, sessions: Callable[[ClusterSpec], SessionSnapshotter | None] | None = None
    ) -> None:
        self._sessions = sessions

    async def period(self, store: ClusterStore) -> float | None:
        cf = await stored_file(store)
        return cf.backup.schedule if cf is not None and cf.backup is not None else None

    async def run(self, store: ClusterStore, spec: ClusterSpec) -> Event:
        cf = await stored_file(store)
        if cf is None or cf.backup is None:
            raise ConfigError("the stored config has no [backup] section any more")
        settings = await stored_settings(cf)
        sessions = self._sessions(spec) if self._sessions is not None else None
        taken = await take_backup(store, spec.options.name, settings, sessions=sessions)
        summary = taken.summary
        return BackupCreated(
            ts=summary.created_at.timestamp(),
            backup_id=summary.backup_id,
            bytes=summary.bytes,
            seconds=round(summary.seconds, 3),
            revision=taken.revision,
        )
