"""Real three-member coordination clusters, one per backend, for the contract suite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from hakeeper.coord.base import Coordinator
from tests.conftest import require_binary


class EngineCluster(Protocol):
    """What the contract suite needs from a cluster of real engine processes."""

    backend: str
    names: list[str]

    async def client(self) -> Any: ...
    async def leader(self) -> str: ...
    def kill(self, name: str) -> None: ...
    async def stop(self, name: str) -> None: ...
    async def restart(self, name: str) -> None: ...
    async def close(self) -> None: ...


def make_cluster(backend: str, base_dir: Path) -> Any:
    if backend == "raft":
        from hakeeper.lab.raft_cluster import RaftCluster

        return RaftCluster(3, base_dir=base_dir)
    require_binary("etcd")
    from hakeeper.lab.etcd_cluster import EtcdCluster

    if backend == "etcd-secure":
        # Client certificates on client and peer ports, and a non-root RBAC user with a
        # token; its role covers "/" because the contract's keys are not under one cluster.
        return EtcdCluster(3, base_dir=base_dir, tls=True, auth=True, prefix="/")
    return EtcdCluster(3, base_dir=base_dir)


@pytest.fixture(params=["raft", "etcd", "etcd-secure"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EngineCluster]:
    cluster = make_cluster(request.param, tmp_path)
    try:
        await cluster.start()
        yield cluster
    finally:
        await cluster.close()


@pytest.fixture
async def coord(engine: EngineCluster) -> Coordinator:
    client: Coordinator = await engine.client()
    return client
