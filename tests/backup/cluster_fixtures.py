"""A cluster's records on a `LocalCoordinator`, and an in-memory session store behind the
backup seam, shared by the cluster-state and restore tests."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hakeeper.model.events import NodeJoined
from hakeeper.model.records import FencedMark, NodeFlags
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.store import ClusterStore
from tests.fakes import LocalCoordinator


def cluster_config(secret_file: Path | str, name: str = "prod") -> str:
    return (
        f'[cluster]\nname = "{name}"\n\n[coordination]\nsecret_file = "{secret_file}"\n\n'
        '[nodes.n1]\naddress = "10.0.0.1"\n\n[nodes.n2]\naddress = "10.0.0.2"\n'
        'raft_port = 7480\n\n[resources.web]\nagent = "process"\n'
        'params = { command = "sleep 100" }\n\n[backup]\nstore = "/var/backups/hakeeper"\n'
    )


async def populated_store(
    config: str, name: str = "prod", coord: LocalCoordinator | None = None
) -> ClusterStore:
    """A store with one record of every kind a backup keeps."""
    store = ClusterStore(coord or LocalCoordinator(), KeySpace(name))
    await store.publish_first_config(config)
    await store.set_node_flags("n2", NodeFlags(standby=True))
    await store.set_constraint("ban", "web", "n1")
    await store.set_target_role("web", "stopped")
    await store.record_failure("n1", "web", 1000.0)
    await store.mark_fenced("n2", FencedMark(by="operator", ts=1001.0))
    await store.event_log("n1").append(NodeJoined(ts=time.time(), node="n1"))
    return store


@dataclass(frozen=True, slots=True)
class MemorySnapshot:
    epoch: int
    seq: int
    data: bytes

    @property
    def keys(self) -> int:
        return self.data.count(b"\n")

    async def chunks(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.data), 7):
            yield self.data[start : start + 7]


@dataclass
class MemorySessions:
    """Session stores as ``key=value`` lines: a snapshotter and a reseeder."""

    stores: dict[str, bytes] = field(default_factory=dict)
    epochs: dict[str, int] = field(default_factory=dict)

    def store_names(self) -> Sequence[str]:
        return sorted(self.stores)

    async def snapshot(self, store: str) -> MemorySnapshot:
        return MemorySnapshot(self.epochs.get(store, 1), 42, self.stores[store])

    async def reseed(self, store: str, epoch: int, chunks: AsyncIterator[bytes]) -> int:
        data = b"".join([c async for c in chunks])
        self.stores[store] = data
        self.epochs[store] = epoch
        return data.count(b"\n")
