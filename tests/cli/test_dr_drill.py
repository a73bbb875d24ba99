"""`hakeeper dr drill` with real processes: a backup restored into a scratch cluster of
three agents on loopback, which must reach quorum and run its resource where the restored
state says; RTO and RPO are reported and written to the cluster's log as an event."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hakeeper.backup.keys import write_key_file
from hakeeper.cli.main import app
from hakeeper.config.secret_file import write_secret_file
from hakeeper.model.events import DrillFinished
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.store import ClusterStore
from tests.fakes import LocalCoordinator

pytestmark = pytest.mark.slow

runner = CliRunner()


def drill_config(tmp_path: Path) -> str:
    write_secret_file(tmp_path / "secret")
    write_key_file(tmp_path / "backup.key")
    # Production addresses and a watchdog: the drill must rewrite them for this machine.
    return f"""
[cluster]
name = "c1"
profile = "fast"
fencing = true

[coordination]
secret_file = "{tmp_path / "secret"}"

[nodes.n1]
address = "10.99.0.1"
[nodes.n2]
address = "10.99.0.2"
[nodes.n3]
address = "10.99.0.3"

[fencing]
watchdog = "required"

[resources.svc]
agent = "process"
params = {{ command = "/bin/sleep 1000" }}
ops.monitor = {{ interval = "1s", timeout = "5s" }}

[backup]
store = "{tmp_path / "backups"}"
key_file = "{tmp_path / "backup.key"}"
"""


def test_a_drill_restores_into_a_scratch_cluster_and_reports_rto_and_rpo(
    tmp_path: Path, coord: LocalCoordinator, use_local: None
) -> None:
    config = tmp_path / "prod.toml"
    config.write_text(drill_config(tmp_path))
    store = ClusterStore(coord, KeySpace("c1"))
    asyncio.run(store.publish_first_config(config.read_text()))
    asyncio.run(store.set_constraint("ban", "svc", "n1"))
    created = runner.invoke(app, ["backup", "create", "--config", str(config)])
    assert created.exit_code == 0, created.output

    result = runner.invoke(app, ["dr", "drill", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True, report
    assert len(report["running"]["svc"]) == 1
    assert report["running"]["svc"] != ["n1"]
    assert 0 < report["rto"] < 300
    assert report["rpo"] >= 0
    events = asyncio.run(store.event_log("x").read())
    drills = [e for e in events if isinstance(e, DrillFinished)]
    assert [d.backup_id for d in drills] == [report["backup_id"]]
