"""Hostile input to `hakeeper node add|remove|replace`: names that would carry TOML into the
cluster file, a forged change record in the store, a rewritten file others could read. Each
attack fails, the cluster's store still answers, and a normal change succeeds afterwards."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from hakeeper.cli.node_members import write_local
from hakeeper.errors import ConfigError
from hakeeper.model.node_change import NodeChange
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.node_change_log import MAX_RECORD_BYTES
from hakeeper.runtime.node_changes import ChangeLimits, NodeChanges
from hakeeper.runtime.store import ClusterStore
from tests.fakes import LocalCoordinator

KEYS = KeySpace("c1")
BASE = """\
[cluster]
name = "c1"
fencing = false

[nodes.n1]
address = "10.0.0.1"
"""


@pytest.fixture
def coord() -> LocalCoordinator:
    return LocalCoordinator()


@pytest.fixture
def store(coord: LocalCoordinator) -> ClusterStore:
    return ClusterStore(coord, KEYS)


def runner(store: ClusterStore) -> NodeChanges:
    return NodeChanges(store, None, BASE, limits=ChangeLimits(join=0.2, poll=0.01))


async def a_normal_add_succeeds(store: ClusterStore, coord: LocalCoordinator) -> None:
    lease = await coord.grant(30.0)  # the new node's member key, as its daemon joins
    await coord.put(KEYS.member("n2"), b"{}", lease)
    changes = runner(store)
    await changes.run(await changes.begin(NodeChange("add", "n2", "10.0.0.2:7480", "configure", 0)))
    assert "[nodes.n2]" in (await store.stored_config() or "")


@pytest.mark.parametrize("name", ['n9]\n[cluster]\nname = "evil', "n9\x00", "../n9", "n9 = 1\n[x"])
async def test_a_node_name_with_toml_syntax_never_reaches_the_stored_file(
    store: ClusterStore, coord: LocalCoordinator, name: str
) -> None:
    changes = runner(store)
    with pytest.raises(ConfigError, match="node name"):
        await changes.run(
            await changes.begin(NodeChange("add", name, "10.0.0.9:7480", "configure", 0))
        )
    assert await store.stored_config() is None
    await store.node_changes().finish()
    await a_normal_add_succeeds(store, coord)


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"kind": "format", "node": "n1"}',
        b"[" * 100_000,
        b" " * (MAX_RECORD_BYTES + 1),
    ],
)
async def test_a_forged_change_record_is_refused_by_name_and_changes_nothing(
    store: ClusterStore, coord: LocalCoordinator, raw: bytes
) -> None:
    await coord.put(KEYS.node_change, raw)  # the attacker's write
    with pytest.raises(ConfigError, match="runtime/node-change"):
        await runner(store).begin(NodeChange("add", "n2", "10.0.0.2:7480", "configure", 0))
    assert await store.stored_config() is None
    await store.node_changes().finish()  # the operator deletes it, as the message says
    await a_normal_add_succeeds(store, coord)


def test_the_rewritten_cluster_file_is_the_owners_alone(tmp_path: Path) -> None:
    config = tmp_path / "cluster.toml"
    config.write_text(BASE)
    config.chmod(0o644)
    write_local(config, BASE + '\n[nodes.n2]\naddress = "10.0.0.2"\n')
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert "[nodes.n2]" in config.read_text()
