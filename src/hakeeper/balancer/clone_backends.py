"""Backends that follow a clone: the live instances of a cluster resource, as servers.

A backend with ``clone = "web"`` (and ``clone_port``, ``cluster_config``) takes its servers
from the coordination store instead of a static list: every instance of resource ``web``
that a node's executor reports ``started`` or ``promoted`` on a node whose member lease is
alive becomes a server ``<node>#<instance>`` at ``<node address>:<clone_port>``. A watch on
the cluster's key space recomputes the list whenever statuses or members change, and
`Backend.reconfigure` applies it in place: servers that stay keep their state, counters and
pooled connections; a removed server's running requests finish on their own connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping

from hakeeper.balancer.config import ServerSpec
from hakeeper.balancer.servers import Backend
from hakeeper.coord.base import KV, Coordinator
from hakeeper.errors import CoordError
from hakeeper.model.address import HostPort
from hakeeper.model.records import InstanceStatus
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.store import decode_status

log = logging.getLogger("hakeeper.balancer")

LIVE_ROLES = frozenset({"started", "promoted"})
RETRY_PAUSE = 1.0


def live_servers(
    statuses: Iterable[InstanceStatus],
    members: set[str],
    addresses: Mapping[str, str],
    resource: str,
    port: int,
) -> tuple[ServerSpec, ...]:
    """The servers a clone's live instances make, sorted by name (pure)."""
    servers = [
        ServerSpec(name=f"{s.node}#{s.instance}", address=str(HostPort(addresses[s.node], port)))
        for s in statuses
        if s.resource == resource
        and s.role in LIVE_ROLES
        and s.node in members
        and s.node in addresses
    ]
    return tuple(sorted(servers, key=lambda s: s.name))


class CloneFollower:
    def __init__(
        self,
        coord: Coordinator,
        keys: KeySpace,
        addresses: Mapping[str, str],
        backend: Backend,
    ) -> None:
        clone = backend.spec.clone
        if clone is None:
            raise ValueError(f"backend {backend.name} follows no clone")
        self.coord = coord
        self.keys = keys
        self.addresses = addresses
        self.backend = backend
        self.resource = clone.resource
        self.port = clone.port

    def compute(self, kvs: Iterable[KV]) -> tuple[ServerSpec, ...]:
        members: set[str] = set()
        statuses: list[InstanceStatus] = []
        for kv in kvs:
            if kv.key.startswith(self.keys.members):
                members.add(kv.key[len(self.keys.members) :])
            elif kv.key.startswith(self.keys.status):
                try:
                    statuses.append(decode_status(kv, self.keys))
                except (ValueError, KeyError, TypeError):
                    continue  # a torn or foreign record names no server
        return live_servers(statuses, members, self.addresses, self.resource, self.port)

    async def refresh(self) -> int:
        """Read the store once and apply; returns the revision read."""
        kvs = await self.coord.range(self.keys.root)
        servers = self.compute(kvs)
        current = tuple((s.name, s.address) for s in self.backend.spec.servers)
        if tuple((s.name, s.address) for s in servers) != current:
            self.backend.reconfigure(self.backend.spec.model_copy(update={"servers": servers}))
            log.info(
                "event=clone_servers backend=%s resource=%s servers=%s",
                self.backend.name,
                self.resource,
                ",".join(s.name for s in servers) or "-",
            )
        return max((kv.mod_revision for kv in kvs), default=0)

    async def run(self) -> None:
        """Refresh, then follow the store; on an engine error, retry after a pause."""
        while True:
            try:
                revision = await self.refresh()
                async for event in self.coord.watch(self.keys.root, revision + 1):
                    key = event.kv.key
                    if key.startswith((self.keys.members, self.keys.status)):
                        await self.refresh()
            except CoordError as exc:
                log.warning(
                    "event=clone_follow_failed backend=%s reason=%r", self.backend.name, str(exc)
                )
            await asyncio.sleep(RETRY_PAUSE)
