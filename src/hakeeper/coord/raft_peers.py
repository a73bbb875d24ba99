"""Who the voters of a ``raft`` cluster are, and how their addresses are written."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from hakeeper.errors import ConfigError
from hakeeper.model.cluster import ClusterSpec, NodeSpec


def parse_peer(address: str) -> tuple[str, int]:
    """Split ``host:port``; a ConfigError that says what is wrong otherwise."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"raft peer {address!r} is not host:port (e.g. 127.0.0.11:7480)")
    return host, int(port)


def member_address(node: NodeSpec) -> str:
    """The engine member address of ``node``: ``address:raft_port``."""
    return f"{node.address}:{node.raft_port}"


def raft_peers(spec: ClusterSpec) -> list[str]:
    """The voters of a ``raft`` cluster: every node's `member_address`."""
    return [member_address(n) for n in spec.nodes]


def membership_fingerprint(peers: Sequence[str]) -> str:
    """Identity of a cluster: its sorted voter list. Members with different lists disagree."""
    return hashlib.sha256("\n".join(sorted(peers)).encode()).hexdigest()[:16]
