"""Writing a backup: objects streamed from a source into a store, then the manifest.

The source is narrow (`ObjectSource`): the names of its objects and, for each, its bytes as
an async stream of chunks, so a large object (a session store's snapshot) never sits whole
in memory. Every object is hashed and counted as it streams, encrypted in chunks when a key
is given, and stored; the manifest goes last, and only its commit makes the backup visible.
Any failure, or cancellation, aborts the upload: the store is left as it was.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from hakeeper.backup.chunks import DEFAULT_CHUNK_SIZE, seal
from hakeeper.backup.errors import BadObjectName
from hakeeper.backup.keys import BackupKeyring, DataKey, wrap_data_key
from hakeeper.backup.manifest import (
    MAX_OBJECTS,
    ClusterIdentity,
    Encryption,
    Manifest,
    ObjectEntry,
    encode_manifest,
)
from hakeeper.backup.names import check_object_name, new_backup_id
from hakeeper.backup.progress import Progress, ProgressCounter
from hakeeper.backup.store import BackupStore


class ObjectSource(Protocol):
    """What a backup is made of: named objects, each read as a stream of chunks."""

    def object_names(self) -> Sequence[str]: ...

    def chunks(self, name: str) -> AsyncIterator[bytes]: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class WriteSummary:
    """The end of a backup, on one screen."""

    backup_id: str
    store: str
    cluster: ClusterIdentity
    objects: int
    bytes: int
    stored_bytes: int
    key_id: str | None
    seconds: float
    created_at: datetime

    def lines(self) -> tuple[str, ...]:
        encryption = f"AES-256-GCM, key {self.key_id}" if self.key_id else "none"
        return (
            f"backup {self.backup_id} of cluster {self.cluster.describe()}",
            f"  where:      {self.store}",
            f"  objects:    {self.objects}, {self.bytes} bytes ({self.stored_bytes} stored)",
            f"  encryption: {encryption}",
            f"  took:       {self.seconds:.2f} s",
        )


class _Tally:
    """The size and SHA-256 of one object, taken as its chunks pass."""

    def __init__(self, name: str, counter: ProgressCounter) -> None:
        self.name = name
        self.size = 0
        self._sha = hashlib.sha256()
        self._counter = counter

    async def tap(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            self._sha.update(chunk)
            self.size += len(chunk)
            self._counter.add_bytes(self.name, len(chunk))
            yield chunk

    def entry(self) -> ObjectEntry:
        return ObjectEntry(name=self.name, size=self.size, sha256=self._sha.hexdigest())


def _checked_names(source: ObjectSource) -> tuple[str, ...]:
    names = tuple(check_object_name(n) for n in source.object_names())
    if len(names) > MAX_OBJECTS:
        raise BadObjectName(f"{len(names)} objects; a backup holds at most {MAX_OBJECTS}")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise BadObjectName(f"object name {name!r} is given twice; each must be unique")
        seen.add(name)
    return names


async def write_backup(
    store: BackupStore,
    source: ObjectSource,
    *,
    cluster: ClusterIdentity,
    coord_revision: int,
    epochs: Mapping[str, int] | None = None,
    keyring: BackupKeyring | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    now: Callable[[], datetime] = utc_now,
    progress: Progress | None = None,
) -> WriteSummary:
    """Write every object of ``source`` and the manifest to ``store``; encrypted with
    ``keyring.current`` when a keyring is given. Names and every field of the manifest but
    the objects' sizes and checksums are checked before anything is written; on any failure
    the partial backup is removed."""
    names = _checked_names(source)
    started = time.monotonic()
    created_at = now()
    backup_id = new_backup_id(created_at)
    data_key: DataKey | None = None
    encryption: Encryption | None = None
    if keyring is not None:
        data_key, raw = DataKey.generate()
        wrapped = wrap_data_key(keyring.current, raw, backup_id)
        encryption = Encryption.of(wrapped, chunk_size)
    draft = Manifest(
        backup_id=backup_id,
        cluster=cluster,
        coord_revision=coord_revision,
        epochs=Manifest.epochs_from(epochs or {}),
        created_at=created_at,
        objects=(),
        encryption=encryption,
    )
    counter = ProgressCounter("write", backup_id, len(names), None, progress)
    upload = await store.begin(backup_id)
    try:
        entries: list[ObjectEntry] = []
        stored = 0
        for name in names:
            tally = _Tally(name, counter)
            stream = tally.tap(source.chunks(name))
            if data_key is not None:
                stream = seal(stream, data_key.aead(), backup_id, name, chunk_size)
            stored += await upload.write_object(name, stream)
            entries.append(tally.entry())
            counter.object_done(name)
        manifest = Manifest.model_validate(
            draft.model_dump() | {"objects": [e.model_dump() for e in entries]}
        )
        await upload.commit(encode_manifest(manifest, data_key))
    except BaseException:
        await upload.abort()
        raise
    return WriteSummary(
        backup_id=backup_id,
        store=store.description,
        cluster=cluster,
        objects=len(entries),
        bytes=manifest.total_size,
        stored_bytes=stored,
        key_id=keyring.current.key_id if keyring is not None else None,
        seconds=time.monotonic() - started,
        created_at=created_at,
    )
