"""Scheduled backups (the controller job) and what `hakeeper check` says about backups."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from hakeeper.backup.catalog import list_backups
from hakeeper.backup.dir_store import DirectoryStore
from hakeeper.backup.health import backup_findings
from hakeeper.backup.keys import write_key_file
from hakeeper.backup.scheduled import ScheduledBackup
from hakeeper.config.loader import file_from_text, spec_from_text
from hakeeper.config.secret_file import write_secret_file
from hakeeper.model.events import BackupCreated
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.store import ClusterStore
from tests.backup.cluster_fixtures import MemorySessions
from tests.fakes import LocalCoordinator


def scheduled_config(tmp_path: Path, schedule: str = "1h") -> str:
    if not (tmp_path / "secret").exists():
        write_secret_file(tmp_path / "secret")
        write_key_file(tmp_path / "backup.key")
    return (
        f'[cluster]\nname = "prod"\n[coordination]\nsecret_file = "{tmp_path / "secret"}"\n'
        "[nodes.n1]\n[backup]\n"
        f'store = "{tmp_path / "backups"}"\nkey_file = "{tmp_path / "backup.key"}"\n'
        f'schedule = "{schedule}"\nkeep_last = 3\n'
    )


async def test_the_job_takes_its_period_and_settings_from_the_stored_config(
    tmp_path: Path,
) -> None:
    text = scheduled_config(tmp_path)
    store = ClusterStore(LocalCoordinator(), KeySpace("prod"))
    job = ScheduledBackup(sessions=lambda spec: MemorySessions({"web": b"k=v\n"}))
    assert await job.period(store) is None  # nothing stored yet: nothing scheduled
    await store.publish_first_config(text)
    assert await job.period(store) == 3600.0
    event = await job.run(store, spec_from_text(text, "t"))
    assert isinstance(event, BackupCreated)
    listing = await list_backups(DirectoryStore(tmp_path / "backups"))
    assert [b.backup_id for b in listing.backups] == [event.backup_id]
    assert listing.backups[0].objects == 4  # config, runtime, events, sessions/web


async def test_check_fails_when_the_newest_backup_is_older_than_two_periods(
    tmp_path: Path,
) -> None:
    text = scheduled_config(tmp_path)
    cf = file_from_text(text, "t")
    assert [f.level for f in await backup_findings(cf)] == ["error"]  # none yet
    store = ClusterStore(LocalCoordinator(), KeySpace("prod"))
    await store.publish_first_config(text)
    event = await ScheduledBackup().run(store, spec_from_text(text, "t"))
    assert await backup_findings(cf) == []
    listing = await list_backups(DirectoryStore(tmp_path / "backups"))
    later = listing.backups[0].created_at + timedelta(hours=2, minutes=1)
    found = await backup_findings(cf, later)
    assert [f.level for f in found] == ["error"]
    assert event.backup_id in found[0].what
    assert "overdue" in found[0].what


async def test_check_warns_about_backups_without_a_key(tmp_path: Path) -> None:
    text = scheduled_config(tmp_path).replace(f'key_file = "{tmp_path / "backup.key"}"\n', "")
    found = await backup_findings(file_from_text(text, "t"))
    assert ("warning", "backups are not encrypted") in [(f.level, f.what) for f in found]
