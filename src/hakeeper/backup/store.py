"""Where backups live: the `BackupStore` protocol every store implements.

A store holds backups by id. A backup is written through a `BackupUpload`: objects first,
then the manifest by `commit`, which is what makes it visible; until then (and for ever if
the writer dies) it is *in progress*: never listed as complete, never read, never pruned.
A store's methods raise `StoreUnavailable` when the storage fails, `BackupNotFound` and
`MissingObject` for what is not there, and never log or show credentials.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


class BackupUpload(Protocol):
    """One backup being written; visible only after `commit`."""

    @property
    def backup_id(self) -> str: ...

    async def write_object(self, name: str, chunks: AsyncIterator[bytes]) -> int:
        """Store the object ``name`` from ``chunks``, streamed; returns the bytes stored."""
        ...

    async def commit(self, manifest: bytes) -> None:
        """Store the manifest and make the backup visible, all at once."""
        ...

    async def abort(self) -> None:
        """Remove whatever this upload stored; the store is as it was before `begin`."""
        ...


class BackupStore(Protocol):
    """A place that holds complete backups and backups in progress."""

    @property
    def description(self) -> str:
        """Where this is, for messages (a path, a bucket and prefix; never credentials)."""
        ...

    async def begin(self, backup_id: str) -> BackupUpload: ...

    async def backup_ids(self) -> tuple[str, ...]:
        """The ids of the complete backups, in no particular order."""
        ...

    async def in_progress(self) -> tuple[str, ...]:
        """The ids of backups begun but not committed (being written, or abandoned)."""
        ...

    async def read_manifest(self, backup_id: str) -> bytes:
        """The stored manifest of a complete backup; `BackupNotFound` if there is none."""
        ...

    def read_object(self, backup_id: str, name: str) -> AsyncIterator[bytes]:
        """The stored bytes of one object, streamed; `MissingObject` if it is not there."""
        ...

    async def delete(self, backup_id: str) -> None:
        """Remove a complete backup: first from the listing, then its objects."""
        ...
