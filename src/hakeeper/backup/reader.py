"""Reading a backup back: its manifest checked first, then each object as it streams.

`open_backup` refuses a backup it cannot trust before any object is read (newer format,
wrong key, changed manifest, another cluster's). `BackupReader.read_object` gives an
object's chunks as they are checked (authentication tag of each chunk when encrypted) and
checks its size and SHA-256 when it ends, so a consumer must not act on an object before it
was read to the end; a restore verifies the whole backup before it applies anything.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator

from hakeeper.backup.chunks import unseal
from hakeeper.backup.errors import CorruptObject, MissingObject, TruncatedObject
from hakeeper.backup.keys import DataKey
from hakeeper.backup.manifest import Manifest, Trust, decode_manifest
from hakeeper.backup.progress import Progress, ProgressCounter
from hakeeper.backup.store import BackupStore


class BackupReader:
    """One backup whose manifest was checked; reads its objects."""

    def __init__(
        self,
        store: BackupStore,
        manifest: Manifest,
        data_key: DataKey | None,
        progress: Progress | None = None,
    ) -> None:
        self._store = store
        self.manifest = manifest
        self._data_key = data_key
        self.counter = ProgressCounter(
            "read", manifest.backup_id, len(manifest.objects), manifest.total_size, progress
        )

    async def read_object(
        self, name: str, counter: ProgressCounter | None = None
    ) -> AsyncIterator[bytes]:
        """The plaintext chunks of ``name``; `CorruptObject`/`TruncatedObject` when its bytes
        differ from the manifest (raised at the latest when the stream ends). Progress goes
        to ``counter``, or to the reader's own (action "read")."""
        counter = counter or self.counter
        backup_id = self.manifest.backup_id
        entry = self.manifest.entry(name)
        if entry is None:
            raise MissingObject(f"backup {backup_id} has no object {name!r}")
        where = f"backup {backup_id}, object {name!r}"
        stream = self._store.read_object(backup_id, name)
        encryption = self.manifest.encryption
        if self._data_key is not None and encryption is not None:
            stream = unseal(stream, self._data_key.aead(), backup_id, name, encryption.chunk_size)
        sha = hashlib.sha256()
        size = 0
        async for chunk in stream:
            size += len(chunk)
            if size > entry.size:
                raise CorruptObject(f"{where}: longer than the {entry.size} bytes recorded")
            sha.update(chunk)
            counter.add_bytes(name, len(chunk))
            yield chunk
        if size < entry.size:
            raise TruncatedObject(
                f"{where}: {size} bytes of the {entry.size} recorded (cut short; use another "
                "backup)"
            )
        if not hmac.compare_digest(sha.hexdigest(), entry.sha256):
            raise CorruptObject(
                f"{where}: its SHA-256 differs from the manifest's (changed after it was "
                "written; use another backup)"
            )
        counter.object_done(name)


async def open_backup(
    store: BackupStore,
    backup_id: str,
    trust: Trust,
    *,
    progress: Progress | None = None,
) -> BackupReader:
    """The backup ``backup_id`` of ``store``, its manifest read and trusted (see
    `hakeeper.backup.manifest.decode_manifest` for the refusals)."""
    data = await store.read_manifest(backup_id)
    trusted = decode_manifest(data, backup_id, trust)
    return BackupReader(store, trusted.manifest, trusted.data_key, progress)
