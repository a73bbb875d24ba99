"""Writers of unique session keys with their acknowledged history, and a session store's
contents read from a backup's snapshot or from a running store, for the restore tests."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hakeeper.agents.factory import AgentContext
from hakeeper.backup.dir_store import DirectoryStore
from hakeeper.backup.keys import load_keyring
from hakeeper.backup.manifest import Trust
from hakeeper.backup.reader import open_backup
from hakeeper.backup.session_seam import session_object
from hakeeper.model.address import split_address
from hakeeper.model.cluster import ClusterSpec
from hakeeper.sessions import entries
from hakeeper.sessions.agent import SessionsAgent
from hakeeper.sessions.client import SessionClient
from hakeeper.sessions.snapshot import SnapshotHeader
from hakeeper.sessions.snapshot_transfer import find_primary

#: key → (value, flags, absolute expiry)
Contents = dict[bytes, tuple[bytes, int, float]]
MAX_WRITES = 20_000  # per writer: a bound whatever the machine's speed
TIMEOUT = 60.0


def store_agent(spec: ClusterSpec, store: str) -> SessionsAgent:
    """The store's resource agent as ``spec`` configures it (for its addresses and secret)."""
    primitive = next(p for p in spec.primitives if p.id == store)
    context = AgentContext(
        instance=store,
        state_dir=Path("/nonexistent"),
        params=primitive.params,
        secret_file=Path(spec.coordination.secret_file),
    )
    return SessionsAgent.from_spec("", context)


async def primary_of(agent: SessionsAgent) -> str:
    """The peer address of the store's primary."""
    return await find_primary(agent.addresses, agent.control_client, TIMEOUT)


async def client_address(agent: SessionsAgent) -> str:
    """The client address of the store's primary."""
    host = split_address(await primary_of(agent)).host
    return f"{host}:{agent.port}"


@dataclass
class Writers:
    """``count`` writers, each setting ``w<i>-<j>`` for j = 0, 1, ... one at a time, each
    next write sent only once the last was acknowledged; ``acked[i]`` is how many were."""

    address: str
    count: int = 3
    acked: list[int] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self.acked = [0] * self.count
        self._tasks = [asyncio.create_task(self._write(i)) for i in range(self.count)]

    async def _write(self, writer: int) -> None:
        async with SessionClient(self.address, timeout=TIMEOUT) as client:
            for j in range(MAX_WRITES):
                if self._stop.is_set():
                    return
                reply = await client.set(self.key(writer, j), self.value(writer, j), flags=writer)
                assert reply == b"STORED", reply
                self.acked[writer] = j + 1

    async def stop(self) -> list[int]:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        return list(self.acked)

    @staticmethod
    def key(writer: int, j: int) -> bytes:
        return b"w%d-%d" % (writer, j)

    @staticmethod
    def value(writer: int, j: int) -> bytes:
        return b"value of w%d-%d" % (writer, j)


def decode_contents(payload: bytes) -> Contents:
    return {e[1]: (e[5], e[2], e[3]) for e in entries.decode(payload)}


async def backup_snapshot(
    root: Path, key_file: Path, backup_id: str, store: str
) -> tuple[SnapshotHeader, Contents]:
    """The snapshot of ``store`` a backup holds: its header and its items."""
    reader = await open_backup(DirectoryStore(root), backup_id, Trust(load_keyring(key_file)))
    data = b"".join([c async for c in reader.read_object(session_object(store))])
    line, _, body = data.partition(b"\n")
    return SnapshotHeader.parse(line + b"\n"), decode_contents(body)


async def store_contents(agent: SessionsAgent) -> Contents:
    """Everything the store's primary holds."""
    async with agent.control_client(await primary_of(agent), TIMEOUT) as client:
        _, _, payload = await client.dump()
    return decode_contents(payload)


def writer_prefixes(contents: Mapping[bytes, object], writers: int) -> list[list[int]]:
    """For each writer, the j of its keys ``contents`` holds, sorted."""
    found: list[list[int]] = [[] for _ in range(writers)]
    for key in contents:
        if key.startswith(b"w") and b"-" in key:
            writer, _, j = key[1:].partition(b"-")
            found[int(writer)].append(int(j))
    return [sorted(js) for js in found]
