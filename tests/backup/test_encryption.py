"""Encryption at rest detects a changed byte anywhere, and names a wrong key as such."""

from __future__ import annotations

import pytest

from hakeeper.backup.dir_store import MANIFEST, DirectoryStore
from hakeeper.backup.errors import (
    CorruptObject,
    ManifestTampered,
    TruncatedObject,
    WrongKey,
)
from hakeeper.backup.keys import BackupKeyring
from hakeeper.backup.manifest import Trust
from hakeeper.backup.reader import open_backup
from hakeeper.backup.writer import write_backup
from tests.backup.conftest import CLUSTER, MemorySource, flip_byte, read_back, stored_path

CHUNK = 1024
FRAME = 17 + CHUNK + 16


@pytest.fixture
async def backup_id(dir_store: DirectoryStore, keyring: BackupKeyring) -> str:
    source = MemorySource({"a": b"A" * (3 * CHUNK), "b": b"B" * (3 * CHUNK)})
    summary = await write_backup(
        dir_store, source, cluster=CLUSTER, coord_revision=1, keyring=keyring, chunk_size=CHUNK
    )
    return summary.backup_id


async def test_a_flipped_byte_in_an_object_is_refused(
    dir_store: DirectoryStore, keyring: BackupKeyring, backup_id: str
) -> None:
    flip_byte(stored_path(dir_store, backup_id, "a"), FRAME + 40)
    with pytest.raises(CorruptObject, match="chunk 1 fails its authentication"):
        await read_back(dir_store, backup_id, keyring)


async def test_a_flipped_byte_in_the_manifest_is_refused(
    dir_store: DirectoryStore, keyring: BackupKeyring, backup_id: str
) -> None:
    path = dir_store.root / backup_id / MANIFEST
    flip_byte(path, path.read_bytes().index(b'"coord_revision": 1') + len(b'"coord_revision": '))
    with pytest.raises(ManifestTampered, match="fails its authentication"):
        await open_backup(dir_store, backup_id, Trust(keyring))


async def test_a_wrong_key_is_refused_as_a_wrong_key(
    dir_store: DirectoryStore, other_keyring: BackupKeyring, backup_id: str
) -> None:
    with pytest.raises(WrongKey, match="wrong key"):
        await open_backup(dir_store, backup_id, Trust(other_keyring))


async def test_chunks_swapped_within_an_object_are_refused(
    dir_store: DirectoryStore, keyring: BackupKeyring, backup_id: str
) -> None:
    path = stored_path(dir_store, backup_id, "a")
    data = path.read_bytes()
    path.write_bytes(data[FRAME : 2 * FRAME] + data[:FRAME] + data[2 * FRAME :])
    with pytest.raises(CorruptObject, match="fails its authentication"):
        await read_back(dir_store, backup_id, keyring)


async def test_chunks_swapped_between_objects_are_refused(
    dir_store: DirectoryStore, keyring: BackupKeyring, backup_id: str
) -> None:
    a, b = stored_path(dir_store, backup_id, "a"), stored_path(dir_store, backup_id, "b")
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db[:FRAME] + da[FRAME:])
    with pytest.raises(CorruptObject, match="'a': chunk 0 fails its authentication"):
        await read_back(dir_store, backup_id, keyring)


async def test_an_object_without_its_last_chunk_is_truncated(
    dir_store: DirectoryStore, keyring: BackupKeyring, backup_id: str
) -> None:
    path = stored_path(dir_store, backup_id, "a")
    path.write_bytes(path.read_bytes()[: 2 * FRAME])
    with pytest.raises(TruncatedObject, match="cut short"):
        await read_back(dir_store, backup_id, keyring)
