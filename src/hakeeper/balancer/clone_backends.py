"""Backends that follow a clone: the live instances of a cluster resource, as servers.

A backend with ``clone = "web"`` (and ``clone_port``, ``cluster_config``) takes its servers
from the coordination store instead of a static list: every instance of resource ``web``
that a node's executor reports ``started`` or ``promoted`` on a node whose member lease is
alive becomes a server ``<node>#<instance>`` at ``<node address>:<clone_port>``. A watch on
the cluster's key space recomputes the list whenever statuses or members change, and
`Backend.reconfigure` applies it in place: servers that stay keep their state, counters and
pooled connections; a removed server's running requests finish on their own connection.

With ``role = "promoted"`` only the primary of a promotable clone is a server (a database's
writes), with ``"unpromoted"`` only its replicas. A failover moves the servers in the same
watch-driven refresh, one store read per change and no polling: the old primary leaves when
its node loses its member lease or reports the demotion, the new one joins when its executor
reports ``promoted``. The cluster orders those (fencing before recovery, demote before
promote), so a read of one revision never holds two primaries the cluster did not make; the
follower does not second-guess it (rule 6 of shared/DESIGN.md §4).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping, Set

from hakeeper.balancer.config import ServerSpec
from hakeeper.balancer.servers import Backend
from hakeeper.errors import ConfigError, CoordError
from hakeeper.model.address import HostPort
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.records import InstanceStatus
from hakeeper.model.roles import RoleSelector, selected_roles
from hakeeper.runtime.store import ClusterStore

log = logging.getLogger("hakeeper.balancer")

RETRY_PAUSE = 1.0


def live_servers(
    statuses: Iterable[InstanceStatus],
    members: Set[str],
    addresses: Mapping[str, str],
    resource: str,
    port: int,
    role: RoleSelector | None = None,
) -> tuple[ServerSpec, ...]:
    """The servers a clone's live instances in ``role`` make, sorted by name (pure)."""
    roles = selected_roles(role)
    servers = [
        ServerSpec(name=f"{s.node}#{s.instance}", address=str(HostPort(addresses[s.node], port)))
        for s in statuses
        if s.resource == resource and s.role in roles and s.node in members and s.node in addresses
    ]
    return tuple(sorted(servers, key=lambda s: s.name))


def require_promotable(spec: ClusterSpec, resource: str, role: RoleSelector | None) -> None:
    """Refuse a role for a resource no promotable clone holds: it would never be promoted, so
    ``"promoted"`` would leave the backend empty for ever and ``"unpromoted"`` mean nothing."""
    if role is None:
        return
    groups = {g.id: g.members for g in spec.groups}
    for clone in spec.clones:
        if clone.promotable and resource in groups.get(clone.child, (clone.child,)):
            return
    raise ConfigError(
        f'clone.role = "{role}" needs a resource of a promotable clone, and {resource!r} is '
        "in none; name the clone's resource (as `hakeeper status` shows it) or leave role out"
    )


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
        self.role = clone.role

    async def refresh(self) -> int:
        """Read the store once and apply; returns the revision read."""
        live = await self.store.live_instances()
        servers = live_servers(
            live.statuses, live.members, self.addresses, self.resource, self.port, self.role
        )
        current = tuple((s.name, s.address) for s in self.backend.spec.servers)
        if tuple((s.name, s.address) for s in servers) != current:
            self.backend.reconfigure(self.backend.spec.model_copy(update={"servers": servers}))
            log.info(
                "event=clone_servers backend=%s resource=%s role=%s servers=%s",
                self.backend.name,
                self.resource,
                self.role or "any",
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
