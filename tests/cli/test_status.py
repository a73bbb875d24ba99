"""`hakeeper status` on a LocalCoordinator: nodes, resources, the scheduler's reasons."""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from hakeeper.cli.main import app
from hakeeper.cli.status import render, watch_status
from hakeeper.errors import NoQuorum
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.events import NodeFenced
from hakeeper.model.records import FencedMark
from hakeeper.runtime.election import ControllerElection
from hakeeper.runtime.events_log import EventLog
from hakeeper.runtime.status_report import collect_status
from hakeeper.runtime.store import ClusterStore
from tests.cli.conftest import KEYS, NOW, assign, online, runs
from tests.fakes import LocalCoordinator

runner = CliRunner()


def recorder() -> Console:
    return Console(width=200, record=True, file=io.StringIO())


def text(renderable: object) -> str:
    console = recorder()
    console.print(renderable)
    return console.export_text()


async def test_a_healthy_cluster_exits_0_and_shows_where_things_run(
    coord: LocalCoordinator, store: ClusterStore, spec: ClusterSpec
) -> None:
    await online(coord, "n1", "n2", "n3")
    lease = await coord.grant(3.0)
    await ControllerElection(coord, KEYS, "n1").campaign(lease)
    for res, node in (("vip", "n1"), ("fs", "n3"), ("job", "n3")):
        await runs(store, res, node)
        await assign(coord, res, node)
    for i, node in enumerate(("n1", "n2", "n3")):
        await runs(store, "web", node, instance=i)
    await assign(coord, "web", "n1", "n2", "n3")
    report = await collect_status(store, spec, NOW)
    assert report.quorum
    assert report.controller is not None
    assert report.controller.node == "n1"
    assert [n.state for n in report.nodes] == ["online"] * 3
    vip = next(r for r in report.resources if r.id == "vip")
    assert vip.running == ("n1 started",)
    assert vip.assigned == ("n1 started",)
    assert vip.epoch > 0
    assert report.exit_code == 0, report.problems
    out = text(render(report, NOW))
    assert "controller: n1 (term" in out
    assert "job (reports)" in out


async def test_a_lost_node_and_the_blocked_resource_with_the_schedulers_reason(
    coord: LocalCoordinator, store: ClusterStore, spec: ClusterSpec
) -> None:
    # fencing = false in the test cluster: a lost node's exclusive resource must stay put.
    await online(coord, "n1", "n3")
    await runs(store, "vip", "n2")
    await assign(coord, "vip", "n2")
    report = await collect_status(store, spec, NOW)
    assert {n.name: n.state for n in report.nodes}["n2"] == "lost"
    vip = next(r for r in report.resources if r.id == "vip")
    assert vip.running == ("n2 started (node lost: may still run)",)
    assert any("not fenced" in why for why in vip.why), vip.why
    assert report.exit_code == 1
    assert any(p.startswith("blocked:") for p in report.problems)
    out = text(render(report, NOW))
    assert "lost" in out
    assert "not fenced" in out


async def test_a_failed_fence_shows_on_the_node_until_it_succeeds(
    coord: LocalCoordinator, store: ClusterStore, spec: ClusterSpec
) -> None:
    fencing_on = replace(spec, options=replace(spec.options, fencing=True))
    await online(coord, "n1", "n3")
    await runs(store, "vip", "n2")
    await assign(coord, "vip", "n2")
    events = EventLog(coord, KEYS, "n1")
    await events.append(NodeFenced(ts=NOW - 5, node="n2", device="ipmi", duration=1.0, ok=False))
    report = await collect_status(store, fencing_on, NOW)
    note = {n.name: n.note for n in report.nodes}["n2"]
    assert "last fence attempt failed (ipmi, 5 s ago); retrying" in note

    await store.mark_fenced("n2", FencedMark(by="ipmi", ts=NOW))
    fenced = await collect_status(store, fencing_on, NOW)
    assert "failed" not in {n.name: n.note for n in fenced.nodes}["n2"]


async def test_pending_actions_show_as_in_progress_with_their_order(
    coord: LocalCoordinator, store: ClusterStore, spec: ClusterSpec
) -> None:
    await online(coord, "n1", "n2", "n3")
    report = await collect_status(store, spec, NOW)
    job = next(r for r in report.resources if r.id == "job")
    assert job.pending
    assert job.pending[0].startswith("start job on")
    assert "(after start fs on" in job.pending[0]


async def test_fail_counts_and_a_failed_instance_make_status_exit_1(
    coord: LocalCoordinator, store: ClusterStore, spec: ClusterSpec
) -> None:
    await online(coord, "n1", "n2", "n3")
    await runs(store, "vip", "n1", role="failed")
    await store.record_failure("n1", "vip", NOW)
    report = await collect_status(store, spec, NOW)
    vip = next(r for r in report.resources if r.id == "vip")
    assert vip.failcounts == ("n1: 1",)
    assert report.failed
    assert report.exit_code == 1


async def test_a_cli_stop_shows_as_an_override_and_explains_itself(
    coord: LocalCoordinator, store: ClusterStore, spec: ClusterSpec
) -> None:
    await online(coord, "n1", "n2", "n3")
    await runs(store, "vip", "n1")
    await store.set_target_role("vip", "stopped")
    report = await collect_status(store, spec, NOW)
    vip = next(r for r in report.resources if r.id == "vip")
    assert (vip.target, vip.override) == ("stopped", True)
    assert "stop vip on n1" in vip.pending
    assert report.exit_code == 0


async def test_no_quorum_is_exit_2_and_reads_nothing(
    coord: LocalCoordinator, store: ClusterStore, spec: ClusterSpec
) -> None:
    coord.fail_with = NoQuorum("no majority")
    report = await collect_status(store, spec, NOW)
    assert not report.quorum
    assert report.exit_code == 2
    assert "NO QUORUM" in text(render(report))


async def test_watch_redraws_on_changes(
    coord: LocalCoordinator, store: ClusterStore, spec: ClusterSpec
) -> None:
    await online(coord, "n1", "n2", "n3")
    console = recorder()
    task = asyncio.create_task(watch_status(store, spec, console, refresh=5.0, frames=2))
    await asyncio.sleep(0.05)
    await ClusterStore(coord, KEYS).set_target_role("vip", "stopped")
    code = await asyncio.wait_for(task, 3.0)  # woken by the watch, long before the refresh
    assert code == 0
    assert "(cli)" in console.export_text()


def test_status_command_json_and_exit_codes(
    use_local: None, coord: LocalCoordinator, config_file: Path
) -> None:
    asyncio.run(online(coord, "n1", "n3"))
    asyncio.run(runs(ClusterStore(coord, KEYS), "vip", "n2"))
    result = runner.invoke(app, ["status", "--config", str(config_file), "--json"])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["quorum"] is True
    assert {n["name"]: n["state"] for n in doc["nodes"]}["n2"] == "lost"
    assert "blocked" in {d["kind"] for d in doc["transition"]["decisions"]}


def test_status_command_reports_no_quorum_with_exit_2(
    use_local: None, coord: LocalCoordinator, config_file: Path
) -> None:
    coord.fail_with = NoQuorum("no majority")
    result = runner.invoke(app, ["status", "--config", str(config_file)])
    assert result.exit_code == 2
    assert "NO QUORUM" in result.stdout or "quorum" in result.stderr


def test_status_plan_shows_the_live_transition(
    use_local: None, coord: LocalCoordinator, config_file: Path
) -> None:
    asyncio.run(online(coord, "n1", "n2", "n3"))
    result = runner.invoke(app, ["status", "--config", str(config_file), "--plan"])
    assert result.exit_code == 0, result.output
    assert "start vip on n1" in result.stdout


def test_a_bad_config_file_names_the_file_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[cluster]\nnmae = 'x'\n")
    result = runner.invoke(app, ["status", "--config", str(bad)])
    assert result.exit_code == 2
    assert "bad.toml" in result.stderr


def test_the_config_file_comes_from_the_environment(
    use_local: None, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAKEEPER_CONFIG", str(config_file))
    result = runner.invoke(app, ["status", "--json"])
    assert json.loads(result.stdout)["cluster"] == "c1"
