"""The session stores of a cluster, as a backup snapshots them and a restore reseeds them.

`SessionStores` is built from the cluster spec: every resource with ``agent = "sessions"`` is
a store, named by its resource id. It reaches a store's nodes the way its resource agent
does (their peer ports from ``params``, the cluster secret from ``[coordination]
secret_file`` or ``params.secret_file``, peer TLS when configured), finds the primary of the
highest epoch, and uses `hakeeper.sessions.snapshot_transfer` there. It offers what backup's
session seam asks for (``store_names``, ``snapshot``, ``reseed``) without importing it: the
backup and the sessions packages are siblings, composed here; and ``read``, with which a
restore drill reads keys back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

from hakeeper.agents.factory import AgentContext
from hakeeper.errors import ConfigError
from hakeeper.model.cluster import ClusterSpec
from hakeeper.sessions.agent import SessionsAgent
from hakeeper.sessions.client import SessionClient
from hakeeper.sessions.client_codec import Value
from hakeeper.sessions.snapshot import DEFAULT_CHUNK, IDLE_TIMEOUT
from hakeeper.sessions.snapshot_transfer import (
    StoreSnapshotStream,
    find_primary,
    reseed,
    take_snapshot,
)

AGENT = "sessions"
# Control calls, the snapshot's freeze and each chunk: a store of a million keys freezes in
# well under a second; after a seed, a majority must copy the store whole within it.
CALL_TIMEOUT = 60.0
# A restore reseeds right after writing the cluster's records: the controller has yet to
# start the store's clone and promote a primary.
FIND_TIMEOUT = 120.0
# Another backup's snapshot being read on the primary (the controller's scheduled one beside
# an operator's) is waited for: long enough for one abandoned by a dead reader to expire.
SNAPSHOT_BUSY_WAIT = IDLE_TIMEOUT + 5.0
# A directory the agent objects are given but never touch (they only make control calls).
UNUSED_STATE_DIR = Path("/var/lib/hakeeper")


class SessionStores:
    """Snapshot and reseed every session store of one cluster spec."""

    def __init__(
        self,
        spec: ClusterSpec,
        *,
        call_timeout: float = CALL_TIMEOUT,
        find_timeout: float = FIND_TIMEOUT,
        chunk_bytes: int = DEFAULT_CHUNK,
    ) -> None:
        secret_file = Path(spec.coordination.secret_file)
        self._agents: dict[str, SessionsAgent] = {}
        for primitive in spec.primitives:
            if primitive.agent != AGENT:
                continue
            context = AgentContext(
                instance=primitive.id,
                state_dir=UNUSED_STATE_DIR,
                params=primitive.params,
                secret_file=secret_file,
            )
            self._agents[primitive.id] = SessionsAgent.from_spec("", context)
        self.call_timeout = call_timeout
        self.find_timeout = find_timeout
        self.chunk_bytes = chunk_bytes

    def store_names(self) -> Sequence[str]:
        return tuple(self._agents)

    async def snapshot(self, store: str) -> StoreSnapshotStream:
        """The store's snapshot, frozen on its primary at one epoch and seq."""
        return await take_snapshot(
            await self._primary_client(store), self.chunk_bytes, busy_wait=SNAPSHOT_BUSY_WAIT
        )

    async def reseed(self, store: str, epoch: int, chunks: AsyncIterator[bytes]) -> int:
        """Replace the store's data with a snapshot taken at ``epoch``; the keys loaded."""
        agent = self._agent(store)
        primary = await find_primary(agent.addresses, agent.control_client, self.find_timeout)

        def client_for(address: str) -> SessionClient:
            return agent.control_client(address, self.call_timeout)

        result = await reseed(
            primary,
            epoch,
            chunks,
            nodes=agent.addresses,
            client_for=client_for,
            timeout=self.call_timeout,
            chunk_bytes=self.chunk_bytes,
        )
        return result.keys

    async def read(self, store: str, keys: Sequence[bytes]) -> Mapping[bytes, Value | None]:
        """Each key's value on the store's primary, read on its peer port (None: absent)."""
        async with await self._primary_client(store) as client:
            return {key: await client.get(key) for key in keys}

    def _agent(self, store: str) -> SessionsAgent:
        agent = self._agents.get(store)
        if agent is None:
            known = ", ".join(self._agents) or "none"
            raise ConfigError(
                f"no session store {store!r} in the config (stores: {known}); a store is a "
                f'resource with agent = "{AGENT}"'
            )
        return agent

    async def _primary_client(self, store: str) -> SessionClient:
        agent = self._agent(store)
        # Positions with the agent's short control timeout: a frozen node costs seconds.
        primary = await find_primary(agent.addresses, agent.control_client, self.find_timeout)
        return agent.control_client(primary, self.call_timeout)
