from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

import pytest
from pydantic import ValidationError

from hakeeper.backup.dir_store import DirectoryStore
from hakeeper.backup.errors import BadObjectName
from hakeeper.backup.keys import BackupKeyring
from hakeeper.backup.manifest import Trust
from hakeeper.backup.reader import open_backup
from hakeeper.backup.writer import write_backup
from tests.backup.conftest import CLUSTER, SAMPLE, Clock, MemorySource, read_back


async def test_a_backup_reads_back_the_objects_it_was_given(
    dir_store: DirectoryStore, source: MemorySource
) -> None:
    summary = await write_backup(dir_store, source, cluster=CLUSTER, coord_revision=9)
    assert await read_back(dir_store, summary.backup_id) == SAMPLE


async def test_an_encrypted_backup_reads_back_with_its_key(
    dir_store: DirectoryStore, source: MemorySource, keyring: BackupKeyring
) -> None:
    summary = await write_backup(
        dir_store, source, cluster=CLUSTER, coord_revision=9, keyring=keyring, chunk_size=4096
    )
    assert summary.key_id == keyring.current.key_id
    assert await read_back(dir_store, summary.backup_id, keyring) == SAMPLE


async def test_the_manifest_holds_the_callers_identity_revision_epochs_and_time(
    dir_store: DirectoryStore, source: MemorySource, clock: Clock
) -> None:
    summary = await write_backup(
        dir_store,
        source,
        cluster=CLUSTER,
        coord_revision=1234,
        epochs={"sessions/web": 17},
        now=clock,
    )
    manifest = (await open_backup(dir_store, summary.backup_id, Trust())).manifest
    assert (manifest.cluster, manifest.coord_revision) == (CLUSTER, 1234)
    assert manifest.epoch_of("sessions/web") == 17
    assert manifest.created_at == clock.now
    assert {o.name: o.size for o in manifest.objects} == {k: len(v) for k, v in SAMPLE.items()}


async def test_encrypted_objects_are_not_stored_in_the_clear(
    dir_store: DirectoryStore, keyring: BackupKeyring
) -> None:
    secret = b"session-cookie-value-" * 100
    summary = await write_backup(
        dir_store, MemorySource({"s": secret}), cluster=CLUSTER, coord_revision=1, keyring=keyring
    )
    stored = b"".join(
        p.read_bytes() for p in (dir_store.root / summary.backup_id).rglob("*") if p.is_file()
    )
    assert b"session-cookie-value" not in stored


class _LargeSource:
    """One object of ``size`` bytes made on the fly, never whole in memory."""

    def __init__(self, size: int) -> None:
        self.size = size

    def object_names(self) -> Sequence[str]:
        return ["big"]

    async def chunks(self, name: str) -> AsyncIterator[bytes]:
        piece = b"\xa5" * (256 * 1024)
        for _ in range(self.size // len(piece)):
            yield piece


async def test_a_large_object_streams_through_in_bounded_memory(
    dir_store: DirectoryStore, keyring: BackupKeyring
) -> None:
    size = 48 * 1024 * 1024
    tracemalloc.start()
    try:
        summary = await write_backup(
            dir_store, _LargeSource(size), cluster=CLUSTER, coord_revision=1, keyring=keyring
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary.bytes == size
    assert peak < size // 4


async def test_a_bad_object_name_is_refused_before_anything_is_written(
    dir_store: DirectoryStore,
) -> None:
    with pytest.raises(BadObjectName, match=r"'\.\.' segment"):
        await write_backup(
            dir_store,
            MemorySource({"ok": b"1", "../escape": b"2"}),
            cluster=CLUSTER,
            coord_revision=1,
        )
    assert not dir_store.root.exists()


class _FailingSource(MemorySource):
    async def chunks(self, name: str) -> AsyncIterator[bytes]:
        if name == "second":
            raise OSError("the session store went away")
        async for chunk in super().chunks(name):
            yield chunk


async def test_a_failing_source_leaves_no_backup_and_no_partial(
    dir_store: DirectoryStore,
) -> None:
    source = _FailingSource({"first": b"a" * 5000, "second": b"b"})
    with pytest.raises(OSError, match="went away"):
        await write_backup(dir_store, source, cluster=CLUSTER, coord_revision=1)
    assert await dir_store.backup_ids() == ()
    assert await dir_store.in_progress() == ()
    assert list(dir_store.root.iterdir()) == []


async def test_the_summary_counts_objects_and_bytes(
    dir_store: DirectoryStore, source: MemorySource
) -> None:
    summary = await write_backup(dir_store, source, cluster=CLUSTER, coord_revision=1)
    assert summary.objects == len(SAMPLE)
    assert summary.bytes == summary.stored_bytes == sum(len(v) for v in SAMPLE.values())
    text = "\n".join(summary.lines())
    assert summary.backup_id in text
    assert "encryption: none" in text
    assert len(summary.lines()) <= 24


async def test_a_naive_clock_is_refused_before_anything_is_written(
    dir_store: DirectoryStore, source: MemorySource
) -> None:
    with pytest.raises(ValidationError, match="timezone"):
        await write_backup(
            dir_store, source, cluster=CLUSTER, coord_revision=1, now=lambda: datetime(2026, 1, 1)
        )
    assert not dir_store.root.exists()


async def test_a_negative_revision_is_refused_before_anything_is_written(
    dir_store: DirectoryStore, source: MemorySource
) -> None:
    with pytest.raises(ValidationError, match="coord_revision"):
        await write_backup(dir_store, source, cluster=CLUSTER, coord_revision=-1)
    assert not dir_store.root.exists()
