"""Each bad backup fails with its own error, and reading it changes nothing in the store."""

from __future__ import annotations

import pytest

from hakeeper.backup.dir_store import MANIFEST, DirectoryStore
from hakeeper.backup.errors import (
    BackupNotFound,
    CorruptObject,
    ForeignBackup,
    MissingObject,
    NewerFormat,
    TruncatedObject,
)
from hakeeper.backup.manifest import ClusterIdentity, Trust
from hakeeper.backup.reader import open_backup
from hakeeper.backup.writer import write_backup
from tests.backup.conftest import CLUSTER, MemorySource, flip_byte, read_back, stored_path


@pytest.fixture
async def backup_id(dir_store: DirectoryStore, source: MemorySource) -> str:
    return (await write_backup(dir_store, source, cluster=CLUSTER, coord_revision=5)).backup_id


def snapshot(store: DirectoryStore) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in store.root.rglob("*") if p.is_file()}


async def test_a_corrupted_object_is_refused(dir_store: DirectoryStore, backup_id: str) -> None:
    flip_byte(stored_path(dir_store, backup_id, "sessions/web"), 500)
    before = snapshot(dir_store)
    with pytest.raises(CorruptObject, match="'sessions/web': its SHA-256 differs"):
        await read_back(dir_store, backup_id)
    assert snapshot(dir_store) == before


async def test_a_truncated_object_is_refused(dir_store: DirectoryStore, backup_id: str) -> None:
    path = stored_path(dir_store, backup_id, "config")
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(TruncatedObject, match="cut short"):
        await read_back(dir_store, backup_id)


async def test_an_object_longer_than_recorded_is_refused(
    dir_store: DirectoryStore, backup_id: str
) -> None:
    path = stored_path(dir_store, backup_id, "config")
    path.write_bytes(path.read_bytes() + b"extra")
    with pytest.raises(CorruptObject, match="longer than"):
        await read_back(dir_store, backup_id)


async def test_a_missing_object_is_refused(dir_store: DirectoryStore, backup_id: str) -> None:
    stored_path(dir_store, backup_id, "runtime/flags").unlink()
    with pytest.raises(MissingObject, match="'runtime/flags' is missing"):
        await read_back(dir_store, backup_id)


async def test_a_backup_of_another_cluster_is_refused(
    dir_store: DirectoryStore, backup_id: str
) -> None:
    ours = ClusterIdentity(name="staging", cluster_id="c0ffee-1")
    with pytest.raises(ForeignBackup, match="not to staging"):
        await open_backup(dir_store, backup_id, Trust(expect=ours))


async def test_a_newer_format_is_refused(dir_store: DirectoryStore, backup_id: str) -> None:
    path = dir_store.root / backup_id / MANIFEST
    path.write_bytes(path.read_bytes().replace(b'"format_version": 1', b'"format_version": 2', 1))
    with pytest.raises(NewerFormat, match="format 2"):
        await open_backup(dir_store, backup_id, Trust())


async def test_an_unknown_backup_is_not_found(dir_store: DirectoryStore, backup_id: str) -> None:
    with pytest.raises(BackupNotFound, match="backup list"):
        await open_backup(dir_store, "20200101T000000Z-00000000", Trust())


async def test_an_object_the_manifest_does_not_name_is_missing(
    dir_store: DirectoryStore, backup_id: str
) -> None:
    reader = await open_backup(dir_store, backup_id, Trust())
    with pytest.raises(MissingObject, match="no object 'nope'"):
        async for _ in reader.read_object("nope"):
            pass
