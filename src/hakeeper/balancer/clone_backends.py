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
import contextlib
import logging
from collections.abc import Iterable, Mapping, Set

from hakeeper.balancer.config import ServerSpec
from hakeeper.balancer.servers import Backend
from hakeeper.errors import CoordError
from hakeeper.model.address import HostPort
from hakeeper.model.records import InstanceStatus
from hakeeper.model.roles import RUNNING_ROLES
from hakeeper.runtime.store import ClusterStore

log = logging.getLogger("hakeeper.balancer")

RETRY_PAUSE = 1.0


def live_servers(
    statuses: Iterable[InstanceStatus],
    members: Set[str],
    addresses: Mapping[str, str],
    resource: str,
    port: int,
) -> tuple[ServerSpec, ...]:
    """The servers a clone's live instances make, sorted by name (pure)."""
    servers = [
        ServerSpec(name=f"{s.node}#{s.instance}", address=str(HostPort(addresses[s.node], port)))
        for s in statuses
        if s.resource == resource
        and s.role in RUNNING_ROLES
        and s.node in members
        and s.node in addresses
    ]
    return tuple(sorted(servers, key=lambda s: s.name))


class CloneFollower:
    def __init__(
        self,
        store: ClusterStore,
        addresses: Mapping[str, str],
        backend: Backend,
    ) -> None:
        clone = backend.spec.clone
        if clone is None:
            raise ValueError(f"backend {backend.name} follows no clone")
        self.store = store
        self.addresses = addresses
        self.backend = backend
        self.resource = clone.resource
        self.port = clone.port

    async def refresh(self) -> int:
        """Read the store once and apply; returns the revision read."""
        live = await self.store.live_instances()
        servers = live_servers(
            live.statuses, live.members, self.addresses, self.resource, self.port
        )
        current = tuple((s.name, s.address) for s in self.backend.spec.servers)
        if tuple((s.name, s.address) for s in servers) != current:
            self.backend.reconfigure(self.backend.spec.model_copy(update={"servers": servers}))
            log.info(
                "event=clone_servers backend=%s resource=%s servers=%s",
                self.backend.name,
                self.resource,
                ",".join(s.name for s in servers) or "-",
            )
        return live.revision

    async def run(self) -> None:
        """Refresh, then follow the store; on an engine error, retry after a pause."""
        while True:
            try:
                revision = await self.refresh()
                changes = self.store.instance_changes(revision)
                async with contextlib.aclosing(changes) as instances:
                    async for _ in instances:
                        await self.refresh()
            except CoordError as exc:
                log.warning(
                    "event=clone_follow_failed backend=%s reason=%r", self.backend.name, str(exc)
                )
            await asyncio.sleep(RETRY_PAUSE)
