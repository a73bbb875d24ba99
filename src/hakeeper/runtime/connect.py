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
from hakeeper.coord.base import Coordinator
from hakeeper.errors import ConfigError
from hakeeper.model.cluster import ClusterSpec
from hakeeper.runtime.keys import KeySpace


def raft_peers(spec: ClusterSpec) -> list[str]:
    return [f"{n.address}:{n.raft_port}" for n in spec.nodes]


def require_cluster_secret(spec: ClusterSpec) -> None:
    """Read the secret file a ``raft`` cluster's peers prove themselves with, to check it:
    a `ConfigError` naming the fix when it is missing, unreadable, empty or open to group
    or others. (An ``etcd`` cluster is guarded by etcd's own TLS and users.)"""
    if spec.coordination.backend == "raft":
        read_secret_file(Path(spec.coordination.secret_file))


async def open_coordinator(
    spec: ClusterSpec,
    *,
    node: str | None = None,
    state_dir: Path | None = None,
    ready_timeout: float = 30.0,
) -> Coordinator:
    """A started coordinator: a voting member for ``node`` (raft), else a client."""
    require_cluster_secret(spec)  # first: nothing starts without it
    timing = spec.timing
    coordination = spec.coordination
    if coordination.backend == "etcd":
        from hakeeper.coord.etcd import EtcdCoordinator

        return await EtcdCoordinator.open(
            list(coordination.endpoints),
            election_timeout=timing.election_max,
            heartbeat=timing.heartbeat,
            ca_file=coordination.ca_file,
            cert_file=coordination.cert_file,
            key_file=coordination.key_file,
            user=coordination.user,
            password_file=coordination.password_file,
            scope=KeySpace(spec.options.name).root,
        )
    from hakeeper.coord.raft import RaftCoordinator

    secret_file = Path(coordination.secret_file)
    peers = raft_peers(spec)
    if node is None:
        return await RaftCoordinator.open(
            peers, timing=timing, secret_file=secret_file, ready_timeout=ready_timeout
        )
    me = spec.node(node)
    if me is None:
        known = ", ".join(n.name for n in spec.nodes)
        raise ConfigError(f"node {node!r} is not in the cluster file (nodes: {known})")
    if state_dir is None:
        raise ConfigError("a raft member needs a state directory for its log (--state-dir)")
    coord = RaftCoordinator(
        peers,
        self_address=f"{me.address}:{me.raft_port}",
        data_dir=state_dir / "raft",
        secret_file=secret_file,
        timing=timing,
    )
    await coord.start()
    return coord
