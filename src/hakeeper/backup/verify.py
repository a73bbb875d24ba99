"""Verifying a backup: read everything back, check every checksum and the authentication,
and report what is wrong instead of stopping at the first problem."""

from __future__ import annotations

import time
from dataclasses import dataclass

from hakeeper.backup.errors import BackupError, BackupNotFound, StoreUnavailable
from hakeeper.backup.manifest import Manifest, Trust
from hakeeper.backup.progress import Progress, ProgressCounter
from hakeeper.backup.reader import open_backup
from hakeeper.backup.store import BackupStore


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What verifying one backup found; ``problems`` is empty when it is sound."""

    backup_id: str
    store: str
    manifest: Manifest | None
    objects_checked: int
    bytes_checked: int
    problems: tuple[str, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> tuple[str, ...]:
        verdict = "sound" if self.ok else f"{len(self.problems)} problem(s)"
        head = [
            f"backup {self.backup_id} in {self.store}: {verdict}",
            f"  checked: {self.objects_checked} objects, {self.bytes_checked} bytes "
            f"in {self.seconds:.2f} s",
        ]
        return (*head, *(f"  - {p}" for p in self.problems))


async def verify_backup(
    store: BackupStore,
    backup_id: str,
    trust: Trust,
    *,
    progress: Progress | None = None,
) -> VerifyReport:
    """Check ``backup_id``: its manifest (format, key, authentication, cluster), then every
    object (present, every chunk's tag, size, SHA-256). `BackupNotFound` and an unreachable
    store are raised; every problem of the backup itself is in the report."""
    started = time.monotonic()
    problems: list[str] = []
    try:
        reader = await open_backup(store, backup_id, trust)
    except (BackupNotFound, StoreUnavailable):
        raise
    except BackupError as exc:
        return VerifyReport(
            backup_id, store.description, None, 0, 0, (str(exc),), time.monotonic() - started
        )
    manifest = reader.manifest
    counter = ProgressCounter(
        "verify", backup_id, len(manifest.objects), manifest.total_size, progress
    )
    checked = 0
    for entry in manifest.objects:
        try:
            async for _ in reader.read_object(entry.name, counter):
                pass
        except StoreUnavailable:
            raise
        except BackupError as exc:
            problems.append(str(exc))
        checked += 1
    return VerifyReport(
        backup_id,
        store.description,
        manifest,
        checked,
        counter.bytes_done,
        tuple(problems),
        time.monotonic() - started,
    )
