"""A small live cluster for the operator commands: a cluster file (naming a cluster secret
of its own) and records in a `LocalCoordinator`, written through the same store API the
agents use."""

from __future__ import annotations

from pathlib import Path

import pytest

from hakeeper.cli import cluster_client
from hakeeper.config import load_spec
from hakeeper.config.secret_file import write_secret_file
from hakeeper.coord.base import Coordinator
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.records import Assignment, InstanceStatus, Placement
from hakeeper.model.roles import InstanceRole
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.record_codec import encode_assignment
from hakeeper.runtime.store import ClusterStore
from tests.fakes import LocalCoordinator

CLUSTER_TOML = """\
[cluster]
name = "c1"
fencing = false

[nodes.n1]
address = "127.0.0.1"
[nodes.n2]
address = "127.0.0.1"
[nodes.n3]
address = "127.0.0.1"

[resources.vip]
agent = "vip"
params = { ip = "10.0.0.100", cidr = 24 }

[resources.web]
agent = "process"
params = { command = "/bin/sleep 1000" }
exclusive = false

[clones.web-clone]
resource = "web"

[resources.fs]
agent = "process"
params = { command = "/bin/sleep 1000" }
[resources.job]
agent = "process"
params = { command = "/bin/sleep 1000" }

[groups.reports]
members = ["fs", "job"]

[[constraints.location]]
resource = "vip"
node = "n1"
score = 100
"""

KEYS = KeySpace("c1")
NOW = 1_700_000_000.0


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    secret = tmp_path / "secret"
    write_secret_file(secret)
    path = tmp_path / "cluster.toml"
    path.write_text(CLUSTER_TOML + f'\n[coordination]\nsecret_file = "{secret}"\n')
    return path


@pytest.fixture
def spec(config_file: Path) -> ClusterSpec:
    return load_spec(config_file)


@pytest.fixture
def coord() -> LocalCoordinator:
    return LocalCoordinator()


@pytest.fixture
def store(coord: LocalCoordinator) -> ClusterStore:
    return ClusterStore(coord, KEYS)


@pytest.fixture
def use_local(monkeypatch: pytest.MonkeyPatch, coord: LocalCoordinator) -> None:
    """End-to-end command tests: the one seam, `open_client`, hands out the fake engine."""

    async def open_local(spec: ClusterSpec) -> Coordinator:
        return coord

    monkeypatch.setattr(cluster_client, "open_client", open_local)


async def online(coord: LocalCoordinator, *nodes: str) -> None:
    """Nodes with a live member key (as `Membership.join` writes it)."""
    for node in nodes:
        lease = await coord.grant(3.0)
        await coord.put(KEYS.member(node), b"{}", lease)


async def runs(
    store: ClusterStore, resource: str, node: str, role: InstanceRole = "started", instance: int = 0
) -> None:
    await store.report(InstanceStatus(resource, node, instance, role, epoch=1, ts=NOW))


async def assign(coord: LocalCoordinator, resource: str, *nodes: str) -> None:
    placements = tuple(Placement(n, "started", i) for i, n in enumerate(nodes))
    await coord.put(KEYS.assignment(resource), encode_assignment(Assignment(resource, placements)))
