"""One backup of a cluster, start to end: collect, write, prune by the retention. What
``hakeeper backup create`` and the controller's schedule both run."""

from __future__ import annotations

from dataclasses import dataclass

from hakeeper.backup.catalog import PruneResult, prune
from hakeeper.backup.cluster_state import collect_cluster
from hakeeper.backup.progress import Progress
from hakeeper.backup.session_seam import SessionSnapshotter
from hakeeper.backup.settings import BackupSettings
from hakeeper.backup.writer import WriteSummary, write_backup
from hakeeper.runtime.store import ClusterStore


@dataclass(frozen=True, slots=True)
class TakenBackup:
    summary: WriteSummary
    revision: int
    epochs: dict[str, int]
    pruned: PruneResult | None
    #: (key, why) of the records left out because they do not decode.
    refused: tuple[tuple[str, str], ...] = ()


async def take_backup(
    store: ClusterStore,
    cluster_name: str,
    settings: BackupSettings,
    *,
    sessions: SessionSnapshotter | None = None,
    progress: Progress | None = None,
) -> TakenBackup:
    """Back up the cluster behind ``store`` into ``settings.store``, then prune what the
    retention no longer keeps (never the backup just written: the newest is always kept)."""
    content = await collect_cluster(store, cluster_name, sessions)
    summary = await write_backup(
        settings.store,
        content,
        cluster=content.identity,
        coord_revision=content.revision,
        epochs=content.epochs,
        keyring=settings.keyring,
        progress=progress,
    )
    policy = settings.retention
    pruned = None
    if policy.keep_last is not None or policy.max_age is not None:
        pruned = await prune(settings.store, policy)
    return TakenBackup(summary, content.revision, content.epochs, pruned, content.refused)
