"""Restore: the whole backup is checked before anything is written; each bad backup fails
with its error and leaves the target cluster as it was; a live cluster is refused unless
forced; session stores are reseeded through the seam at the backup's epoch."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from hakeeper.backup.cluster_state import CONFIG_OBJECT, collect_cluster
from hakeeper.backup.dir_store import DirectoryStore
from hakeeper.backup.errors import (
    BackupError,
    CorruptObject,
    ForeignBackup,
    NewerFormat,
    TruncatedObject,
    WrongKey,
)
from hakeeper.backup.keys import BackupKeyring
from hakeeper.backup.manifest import Trust
from hakeeper.backup.node_map import parse_node_map
from hakeeper.backup.restore import LiveCluster, apply_restore, prepare_restore
from hakeeper.backup.writer import write_backup
from hakeeper.model.records import NodeFlags
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.store import ClusterStore
from tests.backup.cluster_fixtures import MemorySessions, cluster_config, populated_store
from tests.backup.conftest import flip_byte, stored_path
from tests.fakes import LocalCoordinator


async def backed_up(
    tmp_path: Path, keyring: BackupKeyring, sessions: MemorySessions | None = None
) -> tuple[ClusterStore, DirectoryStore, str]:
    source = await populated_store(cluster_config(tmp_path / "secret"))
    content = await collect_cluster(source, "prod", sessions)
    backups = DirectoryStore(tmp_path / "backups")
    summary = await write_backup(
        backups, content, cluster=content.identity, coord_revision=content.revision,
        epochs=content.epochs, keyring=keyring,
    )  # fmt: skip
    return source, backups, summary.backup_id


def fresh_store() -> ClusterStore:
    return ClusterStore(LocalCoordinator(), KeySpace("prod"))


async def restore(
    backups: DirectoryStore, backup_id: str, keyring: BackupKeyring | None, target: ClusterStore,
    *, sessions: MemorySessions | None = None, force: bool = False, name: str = "prod",
) -> None:  # fmt: skip
    plan = await prepare_restore(
        backups, backup_id, Trust(keyring), cluster_name=name,
        node_map=parse_node_map(["n1=127.0.0.21"]),
    )  # fmt: skip
    await apply_restore(plan, target, reseeder=sessions, force=force)


async def test_a_restore_brings_back_config_runtime_state_and_events(
    tmp_path: Path, keyring: BackupKeyring
) -> None:
    source, backups, backup_id = await backed_up(tmp_path, keyring)
    target = fresh_store()
    await restore(backups, backup_id, keyring, target)
    before, after = await source.records().read(), await target.records().read()
    assert after.runtime == before.runtime
    assert after.events == before.events
    assert after.identity == before.identity
    assert after.config is not None
    assert 'address = "127.0.0.21"' in after.config


async def test_session_stores_are_reseeded_at_the_backups_epoch(
    tmp_path: Path, keyring: BackupKeyring
) -> None:
    sessions = MemorySessions({"web": b"a=1\nb=2\n"}, {"web": 9})
    _, backups, backup_id = await backed_up(tmp_path, keyring, sessions)
    target_sessions = MemorySessions()
    await restore(backups, backup_id, keyring, fresh_store(), sessions=target_sessions)
    assert target_sessions.stores == {"web": b"a=1\nb=2\n"}
    assert target_sessions.epochs == {"web": 9}


async def test_a_live_cluster_is_refused_and_left_as_it_was(
    tmp_path: Path, keyring: BackupKeyring
) -> None:
    _, backups, backup_id = await backed_up(tmp_path, keyring)
    target = fresh_store()
    await target.set_node_flags("n1", NodeFlags(maintenance=True))
    before = await target.records().read()
    with pytest.raises(LiveCluster, match="--force"):
        await restore(backups, backup_id, keyring, target)
    assert await target.records().read() == before


async def test_force_replaces_a_live_clusters_runtime_state(
    tmp_path: Path, keyring: BackupKeyring
) -> None:
    source, backups, backup_id = await backed_up(tmp_path, keyring)
    target = fresh_store()
    await target.set_node_flags("n1", NodeFlags(maintenance=True))
    await restore(backups, backup_id, keyring, target, force=True)
    assert (await target.records().read()).runtime == (await source.records().read()).runtime


Damage = Callable[[DirectoryStore, str], None]


def _flip_object(backups: DirectoryStore, backup_id: str) -> None:
    flip_byte(stored_path(backups, backup_id, CONFIG_OBJECT), 40)


def _truncate(backups: DirectoryStore, backup_id: str) -> None:
    path = stored_path(backups, backup_id, "cluster/events.jsonl")
    path.write_bytes(path.read_bytes()[:-20])


def _newer(backups: DirectoryStore, backup_id: str) -> None:
    path = backups.root / backup_id / "MANIFEST"
    head, _, body = path.read_bytes().partition(b"\n")
    header = json.loads(head)
    header["format_version"] = 99
    path.write_bytes(json.dumps(header).encode() + b"\n" + body)


@pytest.mark.parametrize(
    ("damage", "error", "words"),
    [
        (_flip_object, CorruptObject, "fails its authentication"),
        (_truncate, TruncatedObject, "events"),
        (_newer, NewerFormat, "newer"),
    ],
)
async def test_a_damaged_backup_fails_naming_the_problem_and_changes_nothing(
    tmp_path: Path, keyring: BackupKeyring, damage: Damage, error: type[BackupError], words: str
) -> None:
    _, backups, backup_id = await backed_up(tmp_path, keyring)
    damage(backups, backup_id)
    target = fresh_store()
    before = await target.records().read()
    with pytest.raises(error, match=words):
        await restore(backups, backup_id, keyring, target)
    assert await target.records().read() == before


async def test_a_wrongly_keyed_backup_fails_and_changes_nothing(
    tmp_path: Path, keyring: BackupKeyring, other_keyring: BackupKeyring
) -> None:
    _, backups, backup_id = await backed_up(tmp_path, keyring)
    target = fresh_store()
    with pytest.raises(WrongKey, match="key id"):
        await restore(backups, backup_id, other_keyring, target)
    assert (await target.records().read()).config is None


async def test_a_backup_of_another_cluster_name_is_foreign(
    tmp_path: Path, keyring: BackupKeyring
) -> None:
    _, backups, backup_id = await backed_up(tmp_path, keyring)
    target = ClusterStore(LocalCoordinator(), KeySpace("staging"))
    with pytest.raises(ForeignBackup, match="staging"):
        await restore(backups, backup_id, keyring, target, name="staging")
    assert (await target.records().read()).config is None


async def test_a_fresh_cluster_with_an_identity_of_its_own_takes_the_backups(
    tmp_path: Path, keyring: BackupKeyring
) -> None:
    source, backups, backup_id = await backed_up(tmp_path, keyring)
    target = fresh_store()
    await target.records().identity()  # its scheduled backup ran before the restore
    await restore(backups, backup_id, keyring, target)
    assert await target.records().identity() == await source.records().identity()


async def test_a_live_cluster_of_another_identity_is_foreign_even_forced(
    tmp_path: Path, keyring: BackupKeyring
) -> None:
    _, backups, backup_id = await backed_up(tmp_path, keyring)
    target = fresh_store()
    await target.records().identity()
    await target.set_node_flags("n1", NodeFlags(maintenance=True))
    before = await target.records().read()
    with pytest.raises(ForeignBackup, match="holds state of its own"):
        await restore(backups, backup_id, keyring, target, force=True)
    assert await target.records().read() == before
