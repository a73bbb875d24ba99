"""Hostile backups and hostile restore arguments. Each test: the attack fails, the cluster
it targets is still alive and unchanged, and a normal restore afterwards succeeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hakeeper.backup import cluster_state
from hakeeper.backup.cluster_state import RUNTIME_OBJECT, collect_cluster
from hakeeper.backup.dir_store import DirectoryStore
from hakeeper.backup.errors import CorruptObject, TruncatedObject, WrongKey
from hakeeper.backup.keys import BackupKeyring, load_keyring, write_key_file
from hakeeper.backup.manifest import Trust
from hakeeper.backup.node_map import parse_node_map
from hakeeper.backup.restore import apply_restore, prepare_restore
from hakeeper.backup.writer import write_backup
from hakeeper.errors import ConfigError
from hakeeper.model.events import NodeJoined
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.store import ClusterStore
from tests.backup.cluster_fixtures import cluster_config, populated_store
from tests.backup.conftest import MemorySource
from tests.fakes import LocalCoordinator


@pytest.fixture
def keyring(tmp_path: Path) -> BackupKeyring:
    write_key_file(tmp_path / "backup.key")
    return load_keyring(tmp_path / "backup.key")


async def genuine(tmp_path: Path, keyring: BackupKeyring | None) -> tuple[DirectoryStore, str]:
    source = await populated_store(cluster_config(tmp_path / "secret"))
    content = await collect_cluster(source, "prod")
    backups = DirectoryStore(tmp_path / "backups")
    summary = await write_backup(
        backups, content, cluster=content.identity, coord_revision=1, keyring=keyring
    )
    return backups, summary.backup_id


async def forged(tmp_path: Path, runtime: bytes, events: bytes = b"") -> tuple[DirectoryStore, str]:
    """A plain backup anyone could write: the cluster objects of the attacker's choice."""
    source = await populated_store(cluster_config(tmp_path / "secret"))
    content = await collect_cluster(source, "prod")
    objects = dict(content.cluster_objects)
    objects[RUNTIME_OBJECT] = runtime
    objects[cluster_state.EVENTS_OBJECT] = events
    backups = DirectoryStore(tmp_path / "backups")
    summary = await write_backup(
        backups, MemorySource(objects), cluster=content.identity, coord_revision=1
    )
    return backups, summary.backup_id


async def restore(
    backups: DirectoryStore, backup_id: str, trust: Trust, target: ClusterStore
) -> None:
    plan = await prepare_restore(backups, backup_id, trust, cluster_name="prod", node_map={})
    await apply_restore(plan, target, reseeder=None, force=False)


async def target_alive_and_untouched(target: ClusterStore) -> None:
    assert await target.has_quorum()
    records = await target.records().read()
    assert records.config is None
    assert records.runtime.empty
    await target.event_log("test").append(NodeJoined(ts=1.0, node="n1"))  # still writable


async def test_a_forged_plain_backup_is_refused_by_a_key_holder(
    tmp_path: Path, keyring: BackupKeyring
) -> None:
    runtime = json.dumps({"node_flags": {"n1": {"maintenance": True}}}).encode()
    backups, forged_id = await forged(tmp_path / "evil", runtime)
    target = ClusterStore(LocalCoordinator(), KeySpace("prod"))
    with pytest.raises(WrongKey):
        await restore(backups, forged_id, Trust(keyring), target)
    await target_alive_and_untouched(target)
    good, good_id = await genuine(tmp_path / "good", keyring)
    await restore(good, good_id, Trust(keyring), target)
    assert (await target.records().read()).runtime.count() == 5


@pytest.mark.parametrize("name", ["n1/../../controller", "n1\nx", "a" * 300])
async def test_a_runtime_object_cannot_name_keys_outside_its_records(
    tmp_path: Path, name: str
) -> None:
    runtime = json.dumps({"node_flags": {name: {"standby": True}}}).encode()
    backups, forged_id = await forged(tmp_path / "evil", runtime)
    target = ClusterStore(LocalCoordinator(), KeySpace("prod"))
    with pytest.raises(CorruptObject, match=r"runtime\.json"):
        await restore(backups, forged_id, Trust(None), target)
    await target_alive_and_untouched(target)
    good, good_id = await genuine(tmp_path / "good", None)
    await restore(good, good_id, Trust(None), target)


async def test_an_oversized_cluster_object_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits = dict(cluster_state.MAX_CLUSTER_OBJECT)
    limits[cluster_state.EVENTS_OBJECT] = 4096
    monkeypatch.setattr("hakeeper.backup.restore.MAX_CLUSTER_OBJECT", limits)
    backups, forged_id = await forged(tmp_path / "evil", b"{}", b"x" * 5000)
    target = ClusterStore(LocalCoordinator(), KeySpace("prod"))
    with pytest.raises(TruncatedObject, match="at most 4096"):
        await restore(backups, forged_id, Trust(None), target)
    await target_alive_and_untouched(target)
    good, good_id = await genuine(tmp_path / "good", None)
    await restore(good, good_id, Trust(None), target)


async def test_a_map_entry_cannot_inject_into_the_restored_config(tmp_path: Path) -> None:
    for entry in ('n1=10.0.0.1"\n[cluster]', "n1=10.0.0.1\x00", "n1=$(reboot)", "n1/x=1.2.3.4"):
        with pytest.raises(ConfigError, match="--map"):
            parse_node_map([entry])
    backups, good_id = await genuine(tmp_path / "good", None)
    target = ClusterStore(LocalCoordinator(), KeySpace("prod"))
    await target_alive_and_untouched(target)
    plan = await prepare_restore(
        backups, good_id, Trust(None), cluster_name="prod",
        node_map=parse_node_map(["n1=10.0.0.9"]),
    )  # fmt: skip
    await apply_restore(plan, target, reseeder=None, force=False)
    assert 'address = "10.0.0.9"' in ((await target.records().read()).config or "")
