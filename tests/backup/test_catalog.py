from __future__ import annotations

from datetime import timedelta

from hakeeper.backup.catalog import list_backups, prune
from hakeeper.backup.dir_store import MANIFEST, DirectoryStore
from hakeeper.backup.keys import BackupKeyring
from hakeeper.backup.retention import RetentionPolicy
from hakeeper.backup.writer import write_backup
from tests.backup.conftest import CLUSTER, Clock, MemorySource

HOUR = timedelta(hours=1)


async def hourly(store: DirectoryStore, clock: Clock, count: int) -> list[str]:
    """``count`` backups an hour apart, oldest first; the clock ends an hour after the last."""
    ids = []
    for size in range(1, count + 1):
        source = MemorySource({"a": b"x" * size, "b": b"y"})
        summary = await write_backup(store, source, cluster=CLUSTER, coord_revision=1, now=clock)
        ids.append(summary.backup_id)
        clock.advance(HOUR)
    return ids


async def test_a_listing_is_newest_first_with_age_size_and_count(
    dir_store: DirectoryStore, clock: Clock
) -> None:
    ids = await hourly(dir_store, clock, 3)
    listing = await list_backups(dir_store, now=clock)
    assert [b.backup_id for b in listing.backups] == ids[::-1]
    newest = listing.backups[0]
    assert (newest.age, newest.size, newest.objects) == (HOUR, 4, 2)
    assert listing.backups[2].age == 3 * HOUR
    assert newest.cluster == CLUSTER
    assert not newest.encrypted


async def test_a_listing_needs_no_key_for_encrypted_backups(
    dir_store: DirectoryStore, clock: Clock, keyring: BackupKeyring
) -> None:
    source = MemorySource({"a": b"x"})
    await write_backup(
        dir_store, source, cluster=CLUSTER, coord_revision=1, keyring=keyring, now=clock
    )
    (info,) = (await list_backups(dir_store, now=clock)).backups
    assert info.encrypted
    assert info.size == 1


async def test_an_unreadable_manifest_is_listed_apart_and_never_pruned(
    dir_store: DirectoryStore, clock: Clock
) -> None:
    ids = await hourly(dir_store, clock, 3)
    (dir_store.root / ids[0] / MANIFEST).write_bytes(b"garbage")
    listing = await list_backups(dir_store, now=clock)
    assert [u.backup_id for u in listing.unreadable] == [ids[0]]
    assert "damaged" in listing.unreadable[0].problem
    result = await prune(dir_store, RetentionPolicy(keep_last=1), now=clock)
    assert result.deleted == (ids[1],)
    assert ids[0] in await dir_store.backup_ids()


async def test_prune_by_count_deletes_the_oldest(dir_store: DirectoryStore, clock: Clock) -> None:
    ids = await hourly(dir_store, clock, 4)
    result = await prune(dir_store, RetentionPolicy(keep_last=2), now=clock)
    assert result.deleted == (ids[1], ids[0])
    assert sorted(await dir_store.backup_ids()) == sorted(ids[2:])


async def test_prune_by_age_keeps_the_newest_even_when_it_is_old(
    dir_store: DirectoryStore, clock: Clock
) -> None:
    ids = await hourly(dir_store, clock, 3)
    clock.advance(timedelta(days=30))
    result = await prune(dir_store, RetentionPolicy(max_age=timedelta(days=1)), now=clock)
    assert result.kept == (ids[2],)
    assert await dir_store.backup_ids() == (ids[2],)


async def test_prune_never_touches_a_backup_being_written(
    dir_store: DirectoryStore, clock: Clock
) -> None:
    await hourly(dir_store, clock, 2)
    upload = await dir_store.begin("20200101T000000Z-0000000a")
    await prune(dir_store, RetentionPolicy(keep_last=1, max_age=HOUR), now=clock)
    assert await dir_store.in_progress() == (upload.backup_id,)
    await upload.commit(b"still writable")
    assert upload.backup_id in await dir_store.backup_ids()


async def test_a_dry_run_deletes_nothing(dir_store: DirectoryStore, clock: Clock) -> None:
    ids = await hourly(dir_store, clock, 3)
    result = await prune(dir_store, RetentionPolicy(keep_last=1), now=clock, dry_run=True)
    assert result.deleted == (ids[1], ids[0])
    assert len(await dir_store.backup_ids()) == 3


class _RacedStore(DirectoryStore):
    """A store whose delete finds the backup gone: another pruner removed it first."""

    async def delete(self, backup_id: str) -> None:
        await super().delete(backup_id)
        await super().delete(backup_id)


async def test_prune_goes_on_when_another_pruner_was_first(
    dir_store: DirectoryStore, clock: Clock
) -> None:
    ids = await hourly(dir_store, clock, 3)
    raced = _RacedStore(dir_store.root)
    result = await prune(raced, RetentionPolicy(keep_last=1), now=clock)
    assert result.deleted == (ids[1], ids[0])
    assert await dir_store.backup_ids() == (ids[2],)
