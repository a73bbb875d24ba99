"""The S3 store against a real S3-compatible server process (moto's server mode on
127.0.0.1), through boto3 over HTTP: no mocked client."""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from hakeeper.backup.catalog import list_backups, prune
from hakeeper.backup.errors import BackupNotFound, MissingObject, StoreUnavailable
from hakeeper.backup.jobs import take_backup
from hakeeper.backup.keys import BackupKeyring
from hakeeper.backup.manifest import Trust
from hakeeper.backup.restore import apply_restore, prepare_restore
from hakeeper.backup.retention import RetentionPolicy
from hakeeper.backup.s3_store import (
    MIN_PART_SIZE,
    S3Settings,
    S3Store,
    credentials_from_environment,
    read_credentials_file,
)
from hakeeper.backup.settings import backup_settings
from hakeeper.backup.verify import verify_backup
from hakeeper.backup.writer import write_backup
from hakeeper.config.schema import BackupSection
from hakeeper.errors import ConfigError
from hakeeper.lab.processes import free_port
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.store import ClusterStore
from tests.backup.cluster_fixtures import cluster_config, populated_store
from tests.backup.conftest import (
    CLUSTER,
    S3_BUCKET,
    S3_KEYS,
    SAMPLE,
    Clock,
    MemorySource,
    read_back,
)
from tests.fakes import LocalCoordinator

BACKUP = "20261206T100000Z-00000001"


def settings(endpoint: str, **overrides: object) -> S3Settings:
    """Settings for the test server, each test under a prefix of its own."""
    base = S3Settings(
        bucket=S3_BUCKET,
        prefix=f"test-{secrets.token_hex(4)}/",
        endpoint_url=endpoint,
        part_size=MIN_PART_SIZE,
    )
    return replace(base, **overrides)


@pytest.fixture
def s3_store(s3_endpoint: str) -> S3Store:
    return S3Store(settings(s3_endpoint), environ=S3_KEYS)


async def chunks(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def test_an_encrypted_backup_round_trips_through_s3(
    s3_store: S3Store, source: MemorySource, keyring: BackupKeyring
) -> None:
    summary = await write_backup(
        s3_store, source, cluster=CLUSTER, coord_revision=3, keyring=keyring
    )
    assert await read_back(s3_store, summary.backup_id, keyring) == SAMPLE
    assert (await verify_backup(s3_store, summary.backup_id, Trust(keyring, expect=CLUSTER))).ok


async def test_an_object_larger_than_a_part_goes_up_in_parts_and_comes_back(
    s3_store: S3Store,
) -> None:
    big = secrets.token_bytes(2 * MIN_PART_SIZE + 12345)
    summary = await write_backup(
        s3_store, MemorySource({"big": big}, piece=1 << 20), cluster=CLUSTER, coord_revision=1
    )
    assert (await read_back(s3_store, summary.backup_id))["big"] == big


async def test_listing_is_newest_first_and_prune_deletes_the_oldest(
    s3_store: S3Store, clock: Clock
) -> None:
    ids = []
    for _ in range(3):
        source = MemorySource({"a": b"x"})
        summary = await write_backup(s3_store, source, cluster=CLUSTER, coord_revision=1, now=clock)
        ids.append(summary.backup_id)
        clock.advance(timedelta(hours=1))
    listing = await list_backups(s3_store, now=clock)
    assert [b.backup_id for b in listing.backups] == ids[::-1]
    result = await prune(s3_store, RetentionPolicy(keep_last=1), now=clock)
    assert result.deleted == (ids[1], ids[0])
    assert await s3_store.backup_ids() == (ids[2],)
    assert await s3_store.keys_under(s3_store.backup_prefix(ids[0])) == []


async def test_a_partial_upload_is_never_listed(s3_store: S3Store) -> None:
    upload = await s3_store.begin(BACKUP)
    await upload.write_object("config", chunks(b"half of a backup"))
    assert await s3_store.backup_ids() == ()
    assert await s3_store.in_progress() == (BACKUP,)
    assert (await list_backups(s3_store)).backups == ()
    with pytest.raises(BackupNotFound):
        await s3_store.read_manifest(BACKUP)
    await upload.commit(b"manifest")
    assert await s3_store.backup_ids() == (BACKUP,)


class _DiesMidObject:
    """A source that fails after more than one part of an object has gone up."""

    def object_names(self) -> Sequence[str]:
        return ["big"]

    async def chunks(self, name: str) -> AsyncIterator[bytes]:
        yield b"\x01" * (MIN_PART_SIZE + 1)
        raise OSError("the snapshot failed")


async def test_a_failed_upload_leaves_nothing_in_the_bucket(s3_store: S3Store) -> None:
    with pytest.raises(OSError, match="snapshot failed"):
        await write_backup(s3_store, _DiesMidObject(), cluster=CLUSTER, coord_revision=1)
    assert await s3_store.keys_under(s3_store.settings.prefix) == []
    assert await s3_store.in_progress() == ()


async def test_delete_removes_the_whole_backup(s3_store: S3Store, source: MemorySource) -> None:
    summary = await write_backup(s3_store, source, cluster=CLUSTER, coord_revision=1)
    await s3_store.delete(summary.backup_id)
    assert await s3_store.keys_under(s3_store.settings.prefix) == []
    with pytest.raises(BackupNotFound):
        await s3_store.delete(summary.backup_id)


async def test_a_missing_object_is_named(s3_store: S3Store) -> None:
    upload = await s3_store.begin(BACKUP)
    await upload.commit(b"manifest")
    with pytest.raises(MissingObject, match="'config' is missing"):
        async for _ in s3_store.read_object(BACKUP, "config"):
            pass


async def test_credentials_come_from_a_private_file(s3_endpoint: str, tmp_path: Path) -> None:
    path = tmp_path / "s3.credentials"
    path.write_text(
        f"# test bucket\naccess_key_id = {S3_KEYS['AWS_ACCESS_KEY_ID']}\n"
        f"secret_access_key = {S3_KEYS['AWS_SECRET_ACCESS_KEY']}\n"
    )
    path.chmod(0o600)
    store = S3Store(settings(s3_endpoint, credentials_file=path), environ={})
    upload = await store.begin(BACKUP)
    await upload.commit(b"m")
    assert await store.backup_ids() == (BACKUP,)


def test_a_credentials_file_others_may_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s3.credentials"
    path.write_text("access_key_id = a\nsecret_access_key = b\n")
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_credentials_file(path)


def test_missing_credentials_say_where_to_put_them() -> None:
    with pytest.raises(ConfigError, match="AWS_SECRET_ACCESS_KEY"):
        credentials_from_environment({"AWS_ACCESS_KEY_ID": "a"})


def test_credentials_never_show_in_a_repr() -> None:
    credentials = credentials_from_environment(S3_KEYS)
    assert S3_KEYS["AWS_SECRET_ACCESS_KEY"] not in repr(credentials)


async def test_an_endpoint_nobody_answers_is_store_unavailable(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    store = S3Store(settings(dead, connect_timeout=2.0, max_attempts=1), environ=S3_KEYS)
    with pytest.raises(StoreUnavailable, match="check the endpoint") as caught:
        await store.backup_ids()
    assert S3_KEYS["AWS_SECRET_ACCESS_KEY"] not in str(caught.value)


async def test_a_server_that_never_answers_times_out_as_store_unavailable() -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        store = S3Store(settings(endpoint, read_timeout=1.0, max_attempts=2), environ=S3_KEYS)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="ReadTimeout"):
            await store.backup_ids()
    assert time.monotonic() - started < 60  # bounded: two attempts of a one-second read


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("bucket", "Bad_Bucket", "not a valid bucket name"),
        ("prefix", "/abs/", "ending with '/'"),
        ("prefix", "no-slash", "ending with '/'"),
        ("max_attempts", 50, "max_attempts"),
        ("read_timeout", 0.0, "timeouts"),
        ("part_size", 1024, "part_size"),
        ("endpoint_url", "ftp://127.0.0.1", "http:// or https://"),
        ("endpoint_url", "http://host\nX-Injected: 1", "http:// or https://"),
    ],
)
def test_settings_out_of_bounds_are_refused(field: str, value: object, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        settings("http://127.0.0.1:1", **{field: value})


async def test_a_cluster_backed_up_to_an_s3_url_from_the_config_restores_from_it(
    s3_endpoint: str, tmp_path: Path, keyring: BackupKeyring
) -> None:
    # The keyring fixture wrote tmp_path/backup.key: the settings read it from there.
    creds = tmp_path / "s3.credentials"
    creds.touch(mode=0o600)
    creds.write_text(
        f"access_key_id = {S3_KEYS['AWS_ACCESS_KEY_ID']}\n"
        f"secret_access_key = {S3_KEYS['AWS_SECRET_ACCESS_KEY']}\n"
    )
    section = BackupSection(
        store=f"s3://{S3_BUCKET}/cluster-{secrets.token_hex(4)}",
        endpoint=s3_endpoint,
        credentials_file=str(creds),
    )
    chosen = backup_settings(section, key_file=tmp_path / "backup.key")
    assert chosen.store.description.startswith(f"s3://{S3_BUCKET}/cluster-")
    source = await populated_store(cluster_config(tmp_path / "secret"))
    taken = await take_backup(source, "prod", chosen)
    target = ClusterStore(LocalCoordinator(), KeySpace("prod"))
    plan = await prepare_restore(
        chosen.store, taken.summary.backup_id, chosen.trust(), cluster_name="prod", node_map={}
    )
    await apply_restore(plan, target, reseeder=None, force=False)
    assert (await target.records().read()).runtime == (await source.records().read()).runtime
