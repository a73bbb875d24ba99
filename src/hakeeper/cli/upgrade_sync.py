"""The roll's "session store in sync" gate: has a node's session-store replica caught up?

A session store (a resource with ``agent = "sessions"``) reports replica sync through its
position, ``(log_epoch, seq, seen_epoch, role)``, on each node's peer port (``hk_pos``, the
call promote compares positions with; the secret is proven first, TLS when configured). The
cluster's own records do not carry it: a replica's monitor says only that it runs. So the
gate asks the stores, as their resource agent does, and is handed to the roll
(`hakeeper.runtime.rolling_upgrade.ReplicaSync`) from here: the runtime does not import the
sessions package, and this face composes both.

A replica is in sync once it is a replica of the current primary's epoch at or past the
position the primary had when the gate first looked (a fixed target: under a steady write
load a moving one is never reached, and what was acknowledged before the restart is all a
majority needs).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from hakeeper.agents.factory import AgentContext
from hakeeper.errors import SessionStoreError
from hakeeper.model.cluster import ClusterSpec
from hakeeper.sessions.agent import SessionsAgent
from hakeeper.sessions.position import Position, Role

AGENT = "sessions"
# The agent objects only make control calls: they are given a state directory they never use.
UNUSED_STATE_DIR = Path("/var/lib/hakeeper")

#: The position of the store node at a peer address; None when it does not answer.
ReadPosition = Callable[[str], Awaitable[Position | None]]


class SessionReplicas:
    """A `ReplicaSync` over every session store of a cluster: ``stores`` maps a store's
    name to its nodes' peer addresses and the way to read a position there."""

    def __init__(self, stores: Mapping[str, tuple[Mapping[str, str], ReadPosition]]) -> None:
        self._stores = dict(stores)
        self._targets: dict[tuple[str, str], tuple[int, int]] = {}

    @classmethod
    def of(cls, spec: ClusterSpec) -> SessionReplicas:
        secret_file = Path(spec.coordination.secret_file)
        stores: dict[str, tuple[Mapping[str, str], ReadPosition]] = {}
        for primitive in spec.primitives:
            if primitive.agent != AGENT:
                continue
            context = AgentContext(
                instance=primitive.id,
                state_dir=UNUSED_STATE_DIR,
                params=primitive.params,
                secret_file=secret_file,
            )
            agent = SessionsAgent.from_spec("", context)
            peers = {node: agent.address_of(node) for node in agent.nodes}
            stores[primitive.id] = (peers, _reader(agent))
        return cls(stores)

    def peers(self) -> dict[str, dict[str, str]]:
        """Each store's nodes and their peer addresses, where the gate asks."""
        return {store: dict(peers) for store, (peers, _) in self._stores.items()}

    async def __call__(self, node: str) -> tuple[str, ...]:
        behind: list[str] = []
        for store, (peers, read) in sorted(self._stores.items()):
            if node in peers:
                why = await self._behind(store, node, peers, read)
                if why:
                    behind.append(why)
        return tuple(behind)

    async def _behind(
        self, store: str, node: str, peers: Mapping[str, str], read: ReadPosition
    ) -> str:
        positions = {other: await read(address) for other, address in sorted(peers.items())}
        mine = positions[node]
        if mine is not None and mine.role is Role.PRIMARY:
            return ""
        primaries = {n: p for n, p in positions.items() if p is not None and p.role is Role.PRIMARY}
        if not primaries:
            return f"{store}: no primary answers (the store's clone has none promoted yet)"
        primary = max(primaries, key=lambda n: primaries[n].log_epoch)
        now = (primaries[primary].log_epoch, primaries[primary].seq)
        target = self._targets.get((store, node))
        if target is None or now[0] > target[0]:  # first look, or a new primary's epoch
            target = self._targets[(store, node)] = now
        if mine is None:
            return f"{store}: the store on {node} does not answer on its peer port yet"
        if mine.role is Role.REPLICA and (mine.log_epoch, mine.seq) >= target:
            return ""
        return (
            f"{store}: the {mine.role.value} on {node} is at {mine.log_epoch}/{mine.seq}, "
            f"the primary on {primary} was at {target[0]}/{target[1]}"
        )


def _reader(agent: SessionsAgent) -> ReadPosition:
    async def read(address: str) -> Position | None:
        try:
            async with agent.control_client(address) as client:
                return await client.position()
        except SessionStoreError:
            return None

    return read
