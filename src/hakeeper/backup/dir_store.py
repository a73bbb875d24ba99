"""A backup store in a local or mounted directory.

Layout under the root (mode 0700, files 0600)::

    .partial-<id>/objects/<name>     a backup being written (never listed as complete)
    .partial-<id>/MANIFEST
    <id>/objects/<name>, <id>/MANIFEST   a complete backup
    .deleting-<id>/                      a backup being removed (already out of the listing)

Every file is fsynced before the rename that publishes the backup, and the directories that
hold it after, so after a crash a backup is either complete or not listed. File I/O runs in
worker threads in bounded chunks; the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

from hakeeper.backup.errors import BackupNotFound, MissingObject, StoreUnavailable
from hakeeper.backup.manifest import MAX_MANIFEST_BYTES
from hakeeper.backup.names import check_backup_id, check_object_name, is_backup_id

MANIFEST = "MANIFEST"
OBJECTS = "objects"
PARTIAL = ".partial-"
DELETING = ".deleting-"
READ_CHUNK = 1024 * 1024
_P = ParamSpec("_P")
_T = TypeVar("_T")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class DirectoryUpload:
    """A backup being written into ``.partial-<id>`` under the store's root."""

    def __init__(self, store: DirectoryStore, backup_id: str) -> None:
        self._store = store
        self._id = backup_id
        self._dir = store.root / f"{PARTIAL}{backup_id}"
        self._dirs: set[Path] = set()

    @property
    def backup_id(self) -> str:
        return self._id

    async def create(self) -> None:
        await self._store.run(self._dir.mkdir, 0o700)
        self._dirs = {self._dir}
        await self._store.run(self._make_dirs, self._dir / OBJECTS)

    def _make_dirs(self, path: Path) -> None:
        """``path`` and any missing directory between it and the backup's, each 0700
        (``mkdir(parents=True)`` would give the parents the umask's mode)."""
        missing = [
            p for p in (path, *path.parents) if p not in self._dirs and self._dir in p.parents
        ]
        for directory in reversed(missing):
            directory.mkdir(0o700, exist_ok=True)
            self._dirs.add(directory)

    async def write_object(self, name: str, chunks: AsyncIterator[bytes]) -> int:
        path = self._dir / OBJECTS / check_object_name(name)
        if path.parent not in self._dirs:
            await self._store.run(self._make_dirs, path.parent)
        fd = await self._store.run(_create, path)
        written = 0
        try:
            async for chunk in chunks:
                await self._store.run(_write_all, fd, chunk)
                written += len(chunk)
            await self._store.run(os.fsync, fd)
        finally:
            os.close(fd)
        return written

    async def commit(self, manifest: bytes) -> None:
        await self._store.run(self._publish, manifest)

    def _publish(self, manifest: bytes) -> None:
        fd = _create(self._dir / MANIFEST)
        try:
            _write_all(fd, manifest)
            os.fsync(fd)
        finally:
            os.close(fd)
        for directory in sorted(self._dirs, key=lambda p: len(p.parts), reverse=True):
            _fsync_dir(directory)
        os.rename(self._dir, self._store.root / self._id)
        _fsync_dir(self._store.root)

    async def abort(self) -> None:
        await self._store.run(shutil.rmtree, self._dir, True)


class DirectoryStore:
    """Backups as directories under ``root`` (created 0700 when missing)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def description(self) -> str:
        return str(self.root)

    async def run(self, func: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """``func`` in a worker thread, an `OSError` told as `StoreUnavailable`."""
        try:
            return await asyncio.to_thread(func, *args, **kwargs)
        except OSError as exc:
            raise StoreUnavailable(
                f"backup directory {self.root}: {exc.strerror or exc} "
                f"({exc.filename or self.root}); check that it is mounted and writable"
            ) from exc

    async def begin(self, backup_id: str) -> DirectoryUpload:
        check_backup_id(backup_id)
        await self.run(self.root.mkdir, 0o700, True, True)
        upload = DirectoryUpload(self, backup_id)
        await upload.create()
        return upload

    def _entries(self) -> list[str]:
        try:
            return os.listdir(self.root)
        except FileNotFoundError:
            return []

    def _complete_ids(self) -> tuple[str, ...]:
        return tuple(
            e for e in self._entries() if is_backup_id(e) and (self.root / e / MANIFEST).is_file()
        )

    async def backup_ids(self) -> tuple[str, ...]:
        return await self.run(self._complete_ids)

    async def in_progress(self) -> tuple[str, ...]:
        entries = await self.run(self._entries)
        return tuple(
            e.removeprefix(PARTIAL)
            for e in entries
            if e.startswith(PARTIAL) and is_backup_id(e.removeprefix(PARTIAL))
        )

    def _not_found(self, backup_id: str) -> BackupNotFound:
        return BackupNotFound(
            f"no complete backup {backup_id} in {self.root} (`hakeeper backup list` "
            "shows those there are)"
        )

    async def _complete(self, backup_id: str) -> Path:
        path = self.root / check_backup_id(backup_id)
        if not await self.run((path / MANIFEST).is_file):
            raise self._not_found(backup_id)
        return path

    async def read_manifest(self, backup_id: str) -> bytes:
        path = await self._complete(backup_id) / MANIFEST
        data = await self.run(_read_bounded, path, MAX_MANIFEST_BYTES + 1)
        if data is None:  # deleted since it was found
            raise self._not_found(backup_id)
        return data

    async def read_object(self, backup_id: str, name: str) -> AsyncIterator[bytes]:
        path = await self._complete(backup_id) / OBJECTS / check_object_name(name)
        fd = await self.run(_open_existing, path)
        if fd is None:
            raise MissingObject(
                f"backup {backup_id}: object {name!r} is missing from {self.root} (the "
                "backup is incomplete; use another one)"
            )
        try:
            while chunk := await self.run(os.read, fd, READ_CHUNK):
                yield chunk
        finally:
            os.close(fd)

    async def delete(self, backup_id: str) -> None:
        path = await self._complete(backup_id)
        doomed = self.root / f"{DELETING}{backup_id}"
        await self.run(os.rename, path, doomed)
        await self.run(shutil.rmtree, doomed)


def _open_existing(path: Path) -> int | None:
    """A read-only descriptor of ``path`` (never through a symbolic link), None if absent."""
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None


def _read_bounded(path: Path, limit: int) -> bytes | None:
    fd = _open_existing(path)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as handle:
        return handle.read(limit)
