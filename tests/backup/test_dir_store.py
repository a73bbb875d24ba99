from __future__ import annotations

import stat
from collections.abc import AsyncIterator

import pytest

from hakeeper.backup.dir_store import MANIFEST, PARTIAL, DirectoryStore
from hakeeper.backup.errors import BackupNotFound, BadObjectName, MissingObject, StoreUnavailable

BACKUP = "20261206T100000Z-00000001"


async def chunks(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def test_a_backup_is_listed_only_once_committed(dir_store: DirectoryStore) -> None:
    upload = await dir_store.begin(BACKUP)
    await upload.write_object("config", chunks(b"a", b"b"))
    assert await dir_store.backup_ids() == ()
    assert await dir_store.in_progress() == (BACKUP,)
    await upload.commit(b"manifest")
    assert await dir_store.backup_ids() == (BACKUP,)
    assert await dir_store.in_progress() == ()
    assert await dir_store.read_manifest(BACKUP) == b"manifest"
    assert b"".join([c async for c in dir_store.read_object(BACKUP, "config")]) == b"ab"


async def test_an_uncommitted_backup_cannot_be_read(dir_store: DirectoryStore) -> None:
    upload = await dir_store.begin(BACKUP)
    await upload.write_object("config", chunks(b"a"))
    with pytest.raises(BackupNotFound):
        await dir_store.read_manifest(BACKUP)


async def test_an_aborted_upload_leaves_nothing(dir_store: DirectoryStore) -> None:
    upload = await dir_store.begin(BACKUP)
    await upload.write_object("sessions/web", chunks(b"a"))
    await upload.abort()
    assert list(dir_store.root.iterdir()) == []


async def test_the_store_is_private_to_its_owner(dir_store: DirectoryStore) -> None:
    upload = await dir_store.begin(BACKUP)
    await upload.write_object("sessions/web", chunks(b"a"))
    await upload.commit(b"m")
    for path in [dir_store.root, *dir_store.root.rglob("*")]:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


async def test_delete_removes_a_backup_from_the_listing_and_the_disk(
    dir_store: DirectoryStore,
) -> None:
    upload = await dir_store.begin(BACKUP)
    await upload.commit(b"m")
    await dir_store.delete(BACKUP)
    assert await dir_store.backup_ids() == ()
    assert list(dir_store.root.iterdir()) == []


async def test_delete_refuses_a_backup_in_progress(dir_store: DirectoryStore) -> None:
    await dir_store.begin(BACKUP)
    with pytest.raises(BackupNotFound):
        await dir_store.delete(BACKUP)
    assert (dir_store.root / f"{PARTIAL}{BACKUP}").is_dir()


async def test_a_missing_object_is_named(dir_store: DirectoryStore) -> None:
    upload = await dir_store.begin(BACKUP)
    await upload.commit(b"m")
    with pytest.raises(MissingObject, match="'config' is missing"):
        async for _ in dir_store.read_object(BACKUP, "config"):
            pass


async def test_a_path_as_backup_id_is_refused(dir_store: DirectoryStore) -> None:
    with pytest.raises(BadObjectName):
        await dir_store.read_manifest("../../etc")


async def test_a_directory_with_stray_entries_lists_only_backups(
    dir_store: DirectoryStore,
) -> None:
    dir_store.root.mkdir()
    (dir_store.root / "notes.txt").write_text("x")
    (dir_store.root / "20261206T100000Z-00000002").mkdir()  # no manifest: not complete
    upload = await dir_store.begin(BACKUP)
    await upload.commit(b"m")
    assert await dir_store.backup_ids() == (BACKUP,)
    assert (dir_store.root / BACKUP / MANIFEST).is_file()


async def test_an_unwritable_directory_is_told_as_store_unavailable(
    dir_store: DirectoryStore,
) -> None:
    dir_store.root.parent.joinpath("blocker").write_text("x")
    store = DirectoryStore(dir_store.root.parent / "blocker" / "backups")
    with pytest.raises(StoreUnavailable, match="mounted and writable"):
        await store.begin(BACKUP)
