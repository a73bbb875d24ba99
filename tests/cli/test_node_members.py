"""`hakeeper node add|remove|replace` end to end on the fake engine (no Raft: the etcd path,
config plus start); the Raft steps run on real clusters in test_node_membership_real.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hakeeper.cli import cluster_client
from hakeeper.cli.main import app
from hakeeper.coord.base import Coordinator
from hakeeper.errors import EngineMismatch
from hakeeper.model.address import HostPort
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.node_change import NodeChange
from hakeeper.runtime.node_config import with_node
from hakeeper.runtime.store import ClusterStore
from tests.cli.conftest import KEYS, online
from tests.fakes import LocalCoordinator

runner = CliRunner()


def test_add_shows_the_diff_and_the_plan_then_stores_and_rewrites_the_file(
    use_local: None, coord: LocalCoordinator, config_file: Path
) -> None:
    asyncio.run(online(coord, "n1", "n2", "n3", "n4"))
    result = runner.invoke(
        app, ["node", "add", "n4", "--address", "127.0.0.14", "--yes", "--config", str(config_file)]
    )
    assert result.exit_code == 0, result.output
    assert "+[nodes.n4]" in result.stdout
    assert "start web on n4" in result.stdout  # the clone grows onto the new node
    assert "done: add n4" in result.stdout
    assert '[nodes.n4]\naddress = "127.0.0.14"\nraft_port = 7480' in config_file.read_text()
    stored = asyncio.run(ClusterStore(coord, KEYS).stored_config())
    assert stored == config_file.read_text()


def test_removing_a_down_node_needs_it_fenced_or_confirmed_off(
    use_local: None, coord: LocalCoordinator, config_file: Path
) -> None:
    asyncio.run(online(coord, "n1", "n3"))
    cfg = ["--config", str(config_file)]
    refused = runner.invoke(app, ["node", "remove", "n2", "--yes", *cfg])
    assert refused.exit_code == 2
    assert "--confirm-off" in refused.stderr
    assert "[nodes.n2]" in config_file.read_text()
    done = runner.invoke(app, ["node", "remove", "n2", "--yes", "--confirm-off", *cfg])
    assert done.exit_code == 0, done.output
    assert "[nodes.n2]" not in config_file.read_text()


def test_another_change_in_flight_is_named_and_nothing_changes(
    use_local: None, coord: LocalCoordinator, config_file: Path
) -> None:
    log = ClusterStore(coord, KEYS).node_changes()
    asyncio.run(log.begin(NodeChange("add", "n4", "127.0.0.14:7480", "add_voter", 0.0)))
    before = config_file.read_text()
    result = runner.invoke(
        app, ["node", "remove", "n3", "--yes", "--confirm-off", "--config", str(config_file)]
    )
    assert result.exit_code == 2
    assert "add n4 is in flight (step add_voter)" in result.stderr
    assert config_file.read_text() == before


def test_without_yes_and_without_a_terminal_nothing_changes(
    use_local: None, coord: LocalCoordinator, config_file: Path
) -> None:
    result = runner.invoke(
        app, ["node", "add", "n4", "--address", "127.0.0.14", "--config", str(config_file)]
    )
    assert result.exit_code == 2
    assert "pass --yes" in result.stderr
    assert asyncio.run(ClusterStore(coord, KEYS).node_changes().current()) is None


def test_replace_needs_a_new_name(config_file: Path) -> None:
    result = runner.invoke(
        app, ["node", "replace", "n2", "n2", "--address", "127.0.0.9", "--config", str(config_file)]
    )
    assert result.exit_code == 2
    assert "new name" in result.stderr


def test_remove_of_a_node_whose_add_never_joined_undoes_the_add(
    use_local: None, coord: LocalCoordinator, config_file: Path
) -> None:
    cfg = ["--config", str(config_file)]
    before = config_file.read_text()
    store = ClusterStore(coord, KEYS)
    # `node add n4` stopped at its voter step: the file in force names n4, whose machine
    # never started.
    with_n4 = with_node(before, "n4", HostPort("127.0.0.14", 7480))
    assert asyncio.run(store.publish_config(with_n4, 0))
    config_file.write_text(with_n4)
    asyncio.run(store.node_changes().begin(NodeChange("add", "n4", "127.0.0.14:7480",
                                                      "add_voter", 0.0)))  # fmt: skip
    undone = runner.invoke(app, ["node", "remove", "n4", "--yes", *cfg])
    assert undone.exit_code == 0, undone.output
    assert "done: add n4 undone" in undone.stdout
    assert "[nodes.n4]" not in config_file.read_text()
    assert config_file.read_text().strip() == before.strip()
    assert asyncio.run(store.node_changes().current()) is None


def test_the_undo_connects_even_though_the_file_the_add_left_names_the_node(
    monkeypatch: pytest.MonkeyPatch, coord: LocalCoordinator, config_file: Path
) -> None:
    """The embedded Raft refuses a client whose peer list no committed voter list matches:
    the file `node add n4` left names n4, which never joined."""
    opened: list[list[str]] = []

    async def open_raft_like(spec: ClusterSpec) -> Coordinator:
        opened.append([n.name for n in spec.nodes])
        if spec.node("n4") is not None:
            raise EngineMismatch("raft: this node's peer list ... disagrees with every version")
        return coord

    monkeypatch.setattr(cluster_client, "open_client", open_raft_like)
    store = ClusterStore(coord, KEYS)
    with_n4 = with_node(config_file.read_text(), "n4", HostPort("127.0.0.14", 7480))
    assert asyncio.run(store.publish_config(with_n4, 0))
    config_file.write_text(with_n4)
    asyncio.run(store.node_changes().begin(NodeChange("add", "n4", "127.0.0.14:7480",
                                                      "add_voter", 0.0)))  # fmt: skip
    undone = runner.invoke(app, ["node", "remove", "n4", "--yes", "--config", str(config_file)])
    assert undone.exit_code == 0, undone.output
    assert "done: add n4 undone" in undone.stdout
    assert opened == [["n1", "n2", "n3", "n4"], ["n1", "n2", "n3"]]


def test_a_refused_file_is_not_retried_for_anything_but_a_remove(
    monkeypatch: pytest.MonkeyPatch, config_file: Path
) -> None:
    async def refuse(spec: ClusterSpec) -> Coordinator:
        raise EngineMismatch("raft: this node's peer list ... disagrees with every version")

    monkeypatch.setattr(cluster_client, "open_client", refuse)
    result = runner.invoke(
        app, ["node", "add", "n4", "--address", "127.0.0.14", "--yes", "--config", str(config_file)]
    )
    assert result.exit_code == 2
    assert "disagrees" in result.stderr
