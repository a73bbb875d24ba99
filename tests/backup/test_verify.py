from __future__ import annotations

import pytest

from hakeeper.backup.dir_store import DirectoryStore
from hakeeper.backup.errors import BackupNotFound
from hakeeper.backup.keys import BackupKeyring
from hakeeper.backup.manifest import ClusterIdentity, Trust
from hakeeper.backup.progress import ProgressEvent
from hakeeper.backup.verify import verify_backup
from hakeeper.backup.writer import write_backup
from tests.backup.conftest import CLUSTER, SAMPLE, MemorySource, flip_byte, stored_path


@pytest.fixture
async def backup_id(dir_store: DirectoryStore, source: MemorySource, keyring: BackupKeyring) -> str:
    summary = await write_backup(
        dir_store, source, cluster=CLUSTER, coord_revision=1, keyring=keyring, chunk_size=4096
    )
    return summary.backup_id


async def test_a_sound_backup_verifies_every_object_and_byte(
    dir_store: DirectoryStore, keyring: BackupKeyring, backup_id: str
) -> None:
    report = await verify_backup(dir_store, backup_id, Trust(keyring, expect=CLUSTER))
    assert report.ok
    assert report.objects_checked == len(SAMPLE)
    assert report.bytes_checked == sum(len(v) for v in SAMPLE.values())
    assert "sound" in report.lines()[0]


async def test_verify_reports_every_damaged_object(
    dir_store: DirectoryStore, keyring: BackupKeyring, backup_id: str
) -> None:
    flip_byte(stored_path(dir_store, backup_id, "config"), 30)
    stored_path(dir_store, backup_id, "sessions/web").unlink()
    report = await verify_backup(dir_store, backup_id, Trust(keyring))
    assert not report.ok
    assert len(report.problems) == 2
    assert "'config': chunk 0 fails its authentication" in report.problems[0]
    assert "'sessions/web' is missing" in report.problems[1]
    assert report.objects_checked == len(SAMPLE)
    assert "2 problem(s)" in report.lines()[0]


async def test_verify_with_a_wrong_key_reports_it(
    dir_store: DirectoryStore, other_keyring: BackupKeyring, backup_id: str
) -> None:
    report = await verify_backup(dir_store, backup_id, Trust(other_keyring))
    assert not report.ok
    assert "wrong key" in report.problems[0]
    assert report.manifest is None


async def test_verify_reports_a_foreign_backup(
    dir_store: DirectoryStore, keyring: BackupKeyring, backup_id: str
) -> None:
    other = ClusterIdentity(name="other", cluster_id="x")
    report = await verify_backup(dir_store, backup_id, Trust(keyring, expect=other))
    assert "belongs to cluster prod" in report.problems[0]


async def test_verify_of_an_unknown_backup_raises_not_found(
    dir_store: DirectoryStore, keyring: BackupKeyring
) -> None:
    with pytest.raises(BackupNotFound):
        await verify_backup(dir_store, "20200101T000000Z-00000000", Trust(keyring))


async def test_verify_reports_progress_up_to_the_totals(
    dir_store: DirectoryStore, keyring: BackupKeyring, backup_id: str
) -> None:
    events: list[ProgressEvent] = []
    await verify_backup(dir_store, backup_id, Trust(keyring), progress=events.append)
    total = sum(len(v) for v in SAMPLE.values())
    assert all(e.action == "verify" and e.bytes_total == total for e in events)
    assert [e.bytes_done for e in events] == sorted(e.bytes_done for e in events)
    last = events[-1]
    assert (last.objects_done, last.objects_total, last.bytes_done) == (len(SAMPLE), 4, total)
