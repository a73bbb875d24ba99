"""A session-store node's start options (the `serve` command's, or a test's)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hakeeper.sessions.tls import PeerTls


@dataclass(frozen=True, slots=True)
class NodeConfig:
    address: str  # host:port this node serves clients on
    peers: tuple[str, ...] = ()  # the other nodes' peer host:port
    # host:port of this node's peer listener (stream, forwarding, control); "" = address.
    peer_address: str = ""
    secret_file: Path | None = None  # the cluster secret peers prove (required with peers)
    peer_tls: PeerTls | None = None  # TLS on the peer link (mutual, the cluster's CA)
    authfile: Path | None = None  # memcached -Y credentials clients must give, or None
    max_connections: int = 1024  # client connections (memcached's -c)
    idle_timeout: float = 300.0  # a client connection silent this long is closed
    request_timeout: float = 30.0  # a started request must complete within this
    replicated: bool = False
    stale_reads: bool = False
    start_epoch: int = 0  # fencing: refuse anything older (the assignment's epoch)
    write_timeout: float = 5.0  # a held reply older than this drops its connection
    forward_timeout: float = 5.0
    batch_bytes: int = 1 << 20
    memory_limit: int = 64 << 20
    item_size_max: int = 1 << 20

    @property
    def majority(self) -> int:
        return (len(self.peers) + 1) // 2 + 1

    @property
    def identity(self) -> str:
        """The address the other nodes know this one by (its peer address)."""
        return self.peer_address or self.address
