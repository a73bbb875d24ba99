"""Fixtures of the backup tests: an in-memory object source, a key file, a directory store,
a fixed clock, and a real S3-compatible server process (moto's server mode)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hakeeper.backup.dir_store import OBJECTS, DirectoryStore
from hakeeper.backup.keys import BackupKeyring, load_keyring, write_key_file
from hakeeper.backup.manifest import ClusterIdentity, Trust
from hakeeper.backup.reader import open_backup
from hakeeper.backup.store import BackupStore
from hakeeper.lab.processes import ManagedProcess, free_port
from tests.sessions.servers import wait_listening

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
CLUSTER = ClusterIdentity(name="prod", cluster_id="c0ffee-1")


class MemorySource:
    """Objects held in memory, given out in chunks of ``piece`` bytes."""

    def __init__(self, objects: Mapping[str, bytes], piece: int = 1000) -> None:
        self.objects = dict(objects)
        self.piece = piece

    def object_names(self) -> Sequence[str]:
        return list(self.objects)

    async def chunks(self, name: str) -> AsyncIterator[bytes]:
        data = self.objects[name]
        for start in range(0, len(data), self.piece):
            yield data[start : start + self.piece]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


SAMPLE = {
    "config": b"[cluster]\nname = 'prod'\n" * 50,
    "runtime/flags": b'{"standby": ["n2"]}',
    "sessions/web": bytes(range(256)) * 400,
    "empty": b"",
}


@pytest.fixture
def source() -> MemorySource:
    return MemorySource(SAMPLE)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def dir_store(tmp_path: Path) -> DirectoryStore:
    return DirectoryStore(tmp_path / "backups")


@pytest.fixture
def keyring(tmp_path: Path) -> BackupKeyring:
    path = tmp_path / "backup.key"
    write_key_file(path)
    return load_keyring(path)


@pytest.fixture
def other_keyring(tmp_path: Path) -> BackupKeyring:
    path = tmp_path / "other.key"
    write_key_file(path)
    return load_keyring(path)


async def read_back(
    store: BackupStore, backup_id: str, keyring: BackupKeyring | None = None
) -> dict[str, bytes]:
    """Every object of a backup, read and checked through `open_backup`."""
    reader = await open_backup(store, backup_id, Trust(keyring))
    return {
        entry.name: b"".join([c async for c in reader.read_object(entry.name)])
        for entry in reader.manifest.objects
    }


def stored_path(store: DirectoryStore, backup_id: str, name: str) -> Path:
    """Where the directory store keeps one object of a complete backup."""
    return store.root / backup_id / OBJECTS / name


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


S3_BUCKET = "hakeeper-backups"
S3_KEYS = {"AWS_ACCESS_KEY_ID": "testing-key-id", "AWS_SECRET_ACCESS_KEY": "testing-secret"}


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 (a real HTTP server process, not a mocked client),
    killed by its PID at teardown, whatever the tests did; the bucket made once."""
    import boto3  # a test dependency, as is moto[server]

    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    proc = ManagedProcess("moto", argv, log)
    proc.start()
    try:
        wait_listening("127.0.0.1", port, proc, timeout=60)
        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.session.Session(
            aws_access_key_id=S3_KEYS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_KEYS["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        ).client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket=S3_BUCKET)
        yield endpoint
    finally:
        proc.kill()
