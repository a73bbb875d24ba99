"""Open the coordination engine a cluster file describes, as a member or as a client.

An agent of a ``raft`` cluster is a voting member (its node's ``address:raft_port``, its
log under ``state_dir``); the CLI and tools are non-voting clients of the same peers. An
``etcd`` cluster is reached through its endpoints either way.

Raft peers, members and clients alike, prove themselves with the cluster secret
(``[coordination] secret_file``); without a usable secret file nothing is opened at all.
"""

from __future__ import annotations

from pathlib import Path

from hakeeper.config.secret_file import read_secret_file
from hakeeper.coord import backend_class
from hakeeper.coord.base import Coordinator, CoordinatorContext
from hakeeper.model.cluster import ClusterSpec
from hakeeper.runtime.keys import KeySpace


def require_cluster_secret(spec: ClusterSpec) -> None:
    """Read the secret file a ``raft`` cluster's peers prove themselves with, to check it:
    a `ConfigError` naming the fix when it is missing, unreadable, empty or open to group
    or others. (An ``etcd`` cluster is guarded by etcd's own TLS and users.)"""
    if backend_class(spec.coordination.backend).needs_cluster_secret:
        read_secret_file(Path(spec.coordination.secret_file))


async def open_coordinator(
    spec: ClusterSpec,
    *,
    node: str | None = None,
    state_dir: Path | None = None,
    ready_timeout: float = 30.0,
    join: bool = False,
) -> Coordinator:
    """A started coordinator: a voting member for ``node`` (raft), else a client. ``join``:
    a new node, which votes only once ``hakeeper node add`` has made it a member."""
    require_cluster_secret(spec)  # first: nothing starts without it
    backend = backend_class(spec.coordination.backend)
    context = CoordinatorContext(
        spec=spec,
        scope=KeySpace(spec.options.name).root,
        node=node,
        state_dir=state_dir,
        ready_timeout=ready_timeout,
        join=join,
    )
    return await backend.open_for(context)
