"""`hakeeper events`: time order, JSON lines that parse back, following new events."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from hakeeper.cli.events import follow_events, read_events
from hakeeper.cli.main import app
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.events import Event, NodeJoined, NodeLost, ResourceStarted, from_json
from hakeeper.runtime.events_log import EventLog
from tests.cli.conftest import KEYS
from tests.fakes import LocalCoordinator

runner = CliRunner()


async def seed(coord: LocalCoordinator) -> None:
    a, b = EventLog(coord, KEYS, "n1"), EventLog(coord, KEYS, "n2")
    await b.append(ResourceStarted(ts=300.0, resource="vip", node="n2"))
    await a.append(NodeJoined(ts=100.0, node="n1"))
    await a.append(NodeLost(ts=200.0, node="n3"))


async def test_events_come_back_in_time_order(coord: LocalCoordinator, spec: ClusterSpec) -> None:
    await seed(coord)
    found, revision = await read_events(coord, spec)
    assert [e.ts for e in found] == [100.0, 200.0, 300.0]
    assert revision == coord.state.revision
    recent, _ = await read_events(coord, spec, since=150.0, now=400.0)
    assert [e.ts for e in recent] == [300.0]


async def test_follow_prints_only_what_comes_after_the_read(
    coord: LocalCoordinator, spec: ClusterSpec
) -> None:
    await seed(coord)
    _, revision = await read_events(coord, spec)
    seen: list[Event] = []
    task = asyncio.create_task(follow_events(coord, spec, revision, seen.append, limit=1))
    await asyncio.sleep(0.01)
    await EventLog(coord, KEYS, "n1").append(NodeLost(ts=400.0, node="n1"))
    await asyncio.wait_for(task, 3.0)
    assert seen == [NodeLost(ts=400.0, node="n1")]


def test_events_json_lines_parse_back(
    use_local: None, coord: LocalCoordinator, config_file: Path
) -> None:
    asyncio.run(seed(coord))
    result = runner.invoke(app, ["events", "--json", "--config", str(config_file)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    events = [from_json(line) for line in lines]
    assert [e.kind for e in events] == ["node.joined", "node.lost", "resource.started"]
    assert json.loads(lines[0])["kind"] == "node.joined"


def test_events_table_and_bad_since(
    use_local: None, coord: LocalCoordinator, config_file: Path
) -> None:
    asyncio.run(seed(coord))
    table = runner.invoke(app, ["events", "--config", str(config_file)])
    assert table.exit_code == 0
    assert "3 events" in table.stdout
    assert "node=n3" in table.stdout
    bad = runner.invoke(app, ["events", "--since", "soon", "--config", str(config_file)])
    assert bad.exit_code == 2
    assert "--since" in bad.stderr
