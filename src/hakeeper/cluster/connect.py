"""Open the coordination engine a cluster file describes, as a member or as a client.

An agent of a ``raft`` cluster is a voting member (its node's ``address:raft_port``, its
log under ``state_dir``); the CLI and tools are non-voting clients of the same peers. An
``etcd`` cluster is reached through its endpoints either way.
"""

from __future__ import annotations

import os
from pathlib import Path

from hakeeper.cluster.keys import KeySpace
from hakeeper.coord.base import Coordinator
from hakeeper.errors import ConfigError
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.timing import profile


def raft_peers(spec: ClusterSpec) -> list[str]:
    return [f"{n.address}:{n.raft_port}" for n in spec.nodes]


def _secret_if_present(path: Path) -> Path | None:
    # Until the Raft transport requires it (issue 15), a missing secret file means none.
    return path if os.path.exists(path) else None


async def open_coordinator(
    spec: ClusterSpec,
    *,
    node: str | None = None,
    state_dir: Path | None = None,
    ready_timeout: float = 30.0,
) -> Coordinator:
    """A started coordinator: a voting member for ``node`` (raft), else a client."""
    timing = profile(spec.options.profile)
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

    peers = raft_peers(spec)
    secret = _secret_if_present(Path(coordination.secret_file))
    if node is None:
        return await RaftCoordinator.open(
            peers, timing=timing, secret_file=secret, ready_timeout=ready_timeout
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
        secret_file=secret,
        timing=timing,
    )
    await coord.start()
    return coord
