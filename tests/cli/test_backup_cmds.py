"""`hakeeper backup create|list|verify|prune` and `hakeeper restore`, end to end on the
fake engine: what they print, what they write, and what they refuse."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hakeeper.backup.keys import write_key_file
from hakeeper.cli import cluster_client
from hakeeper.cli.main import app
from hakeeper.coord.base import Coordinator
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.records import NodeFlags
from hakeeper.runtime.store import ClusterStore
from tests.backup.conftest import flip_byte
from tests.cli.conftest import KEYS
from tests.fakes import LocalCoordinator

runner = CliRunner()


@pytest.fixture
def backup_config(config_file: Path, tmp_path: Path) -> Path:
    write_key_file(tmp_path / "backup.key")
    with config_file.open("a") as out:
        out.write(
            f'\n[backup]\nstore = "{tmp_path / "backups"}"\n'
            f'key_file = "{tmp_path / "backup.key"}"\nkeep_last = 2\n'
        )
    return config_file


def hk(*args: str) -> dict[str, object]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_create_list_verify_and_retention(
    backup_config: Path, store: ClusterStore, use_local: None
) -> None:
    asyncio.run(store.publish_first_config(backup_config.read_text()))
    asyncio.run(store.set_node_flags("n2", NodeFlags(standby=True)))
    c = ("--config", str(backup_config))
    ids = [hk("backup", "create", *c)["backup_id"] for _ in range(3)]
    listing = hk("backup", "list", *c)
    assert [b["backup_id"] for b in listing["backups"]] == ids[:0:-1]  # type: ignore[index,union-attr]
    report = hk("backup", "verify", *c)
    assert report["ok"] is True
    assert report["backup_id"] == ids[-1]
    flip_byte(backup_config.parent / "backups" / str(ids[-1]) / "objects/cluster/runtime.json", 30)
    bad = runner.invoke(app, ["backup", "verify", str(ids[-1]), *c])
    assert bad.exit_code == 1
    assert "fails its authentication" in bad.stdout


def test_create_prints_a_one_screen_summary(
    backup_config: Path, store: ClusterStore, use_local: None
) -> None:
    asyncio.run(store.publish_first_config(backup_config.read_text()))
    result = runner.invoke(app, ["backup", "create", "--config", str(backup_config)])
    assert result.exit_code == 0, result.output
    assert "encryption: AES-256-GCM" in result.stdout
    assert len(result.stdout.splitlines()) <= 10


def test_verify_without_a_backup_says_how_to_take_one(backup_config: Path) -> None:
    result = runner.invoke(app, ["backup", "verify", "--config", str(backup_config)])
    assert result.exit_code == 2
    assert "no backup in" in result.stderr
    assert "hakeeper backup create" in result.stderr


def test_restore_writes_the_config_then_seeds_a_fresh_cluster(
    backup_config: Path,
    store: ClusterStore,
    use_local: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asyncio.run(store.publish_first_config(backup_config.read_text()))
    asyncio.run(store.set_node_flags("n2", NodeFlags(standby=True)))
    asyncio.run(store.set_constraint("ban", "vip", "n1"))
    backup_id = str(hk("backup", "create", "--config", str(backup_config))["backup_id"])
    restored = tmp_path / "restored.toml"
    first = hk(
        "restore", backup_id, "--config", str(tmp_path / "none.toml"),
        "--store", str(tmp_path / "backups"), "--key-file", str(tmp_path / "backup.key"),
        "--map", "n1=127.0.0.21", "--write-config", str(restored),
    )  # fmt: skip
    assert 'address = "127.0.0.21"' in restored.read_text()
    assert "--map=n1=127.0.0.21" in str(first["next"])

    fresh = LocalCoordinator()

    async def open_fresh(spec: ClusterSpec) -> Coordinator:
        return fresh

    monkeypatch.setattr(cluster_client, "open_client", open_fresh)
    summary = hk("restore", backup_id, "--config", str(restored), "--map", "n1=127.0.0.21")
    assert summary["records"] == 2
    after = asyncio.run(ClusterStore(fresh, KEYS).records().read())
    assert after.runtime == asyncio.run(store.records().read()).runtime
    assert after.config == restored.read_text()


def test_restore_refuses_a_live_cluster_without_force(
    backup_config: Path, store: ClusterStore, use_local: None
) -> None:
    asyncio.run(store.publish_first_config(backup_config.read_text()))
    backup_id = str(hk("backup", "create", "--config", str(backup_config))["backup_id"])
    asyncio.run(store.set_node_flags("n1", NodeFlags(maintenance=True)))
    result = runner.invoke(app, ["restore", backup_id, "--config", str(backup_config)])
    assert result.exit_code == 2
    assert "refusing to overwrite a live cluster" in result.stderr
    assert asyncio.run(store.node_flags("n1")).maintenance
    forced = runner.invoke(app, ["restore", backup_id, "--config", str(backup_config), "--force"])
    assert forced.exit_code == 0, forced.output
    assert not asyncio.run(store.node_flags("n1")).maintenance


def test_check_fails_on_a_schedule_without_a_recent_backup(backup_config: Path) -> None:
    with backup_config.open("a") as out:
        out.write('schedule = "1h"\n')
    result = runner.invoke(app, ["check", "--json", "--config", str(backup_config)])
    assert result.exit_code == 1
    backups = [f for f in json.loads(result.stdout) if f["section"] == "backup"]
    assert [(f["level"], f["what"][:12]) for f in backups] == [("error", "no backup in")]
    assert "hakeeper backup create" in backups[0]["fix"]


def test_a_drill_of_a_damaged_backup_fails_naming_the_problem(
    backup_config: Path, store: ClusterStore, use_local: None
) -> None:
    asyncio.run(store.publish_first_config(backup_config.read_text()))
    backup_id = str(hk("backup", "create", "--config", str(backup_config))["backup_id"])
    flip_byte(backup_config.parent / "backups" / backup_id / "objects/cluster/config.toml", 9)
    result = runner.invoke(app, ["dr", "drill", "--config", str(backup_config), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert "fails its authentication" in report["reason"]
    assert report["event"] == "written to the cluster's log (drill.finished)"
