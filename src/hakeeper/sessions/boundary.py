"""What a connection and the replication node know of each other, and nothing more.

The memcached protocol side (`protocol`, `commands`, `peer_gate`) and the replication side
(`node`, `control`, `links`, `upstream`, `forwarding`) both import this module and never
each other, so their imports form a DAG; `server` is the one place that builds both.

- `NodeSide` is the node as a connection uses it: the role flags read on every command, the
  commit position held replies wait for, the write log, forwarding to the primary, the peer
  commands and the connection count.
- `Connection` is a connection as the node uses it: release the replies a commit or a
  forwarded answer made ready, abort, the periodic timeout sweep.
- `Slot` is a reply the primary's answer fills in (forwarding); `Held` a reply held for a
  commit.

Both protocols are structural (`typing.Protocol`): nothing is looked up through them at run
time, so the hot path reads the node's attributes exactly as before.
"""

from __future__ import annotations

from typing import Protocol

from hakeeper.config.secret_file import ClusterSecret
from hakeeper.sessions.auth import ClientAuth
from hakeeper.sessions.store import Store

# A reply held for a commit: (reply, seq that must be committed first, NodeSide.now when held).
Held = tuple[bytes, int, float]


class Slot:
    """A reply waiting for the primary's answer (forwarded); filled in when it arrives."""

    __slots__ = ("data", "since")

    def __init__(self, data: bytes | None, since: float) -> None:
        self.data = data
        self.since = since


class Connection(Protocol):
    """A client or peer connection, as the node sees it."""

    peer: bool  # the peer port (secret proven), not a client

    def release(self) -> None:
        """Write every held reply that is ready (answered and committed)."""

    def oldest_held(self) -> float | None:
        """When the oldest reply still held was held (NodeSide.now), or None."""

    def abort(self, reason: str) -> None:
        """Drop the connection: its held replies can no longer be given honestly."""

    def sweep(self, now: float, idle_timeout: float, request_timeout: float) -> None:
        """Close a connection idle too long, or one whose request does not complete."""


class NodeSide(Protocol):
    """The node, as a connection sees it."""

    store: Store
    client_auth: ClientAuth | None
    # Role flags, read on every command.
    holds_replies: bool  # primary: a reply waits until its barrier is committed
    logs_writes: bool  # primary: every write's resulting state goes to the log
    forwards_writes: bool  # replica: writes go to the primary
    forwards_reads: bool  # replica without stale reads: reads go to the primary
    # A coarse monotonic clock the node's ticker sets (the hot path reads no clock).
    now: float
    # Commit positions: the last entry logged, the last sent to a replica, the committed one.
    seq: int
    sent_max: int
    commit_seq: int
    # Connections holding replies for a commit or a forwarded answer.
    waiting: set[Connection]
    pending_peers: int  # peer-port connections still in the handshake

    def connection_opened(self, conn: Connection) -> bool:
        """Count a new connection; False (refuse it) for a client beyond max_connections."""

    def connection_closed(self, conn: Connection) -> None: ...

    def secret(self) -> ClusterSecret:
        """The cluster secret a peer connection proves."""

    def reply_barrier(self) -> int:
        """A seq whose commit proves this node was still primary after the request arrived."""

    def log_key(self, key: bytes) -> None:
        """Log the state of ``key`` (a write on the primary)."""

    def log_flush(self) -> None:
        """Log a ``flush_all`` (on the primary)."""

    def forward(
        self, payload: bytes, multi: bool, noreply: bool, slot: Slot, conn: Connection
    ) -> None:
        """Send a client command to the primary; its reply fills ``slot``."""

    def block_limit(self, cmd: bytes) -> int:
        """The largest ``hk_*`` block accepted for ``cmd``."""

    def control(self, tokens: list[bytes]) -> bytes:
        """A peer's control or stream command without a data block; the reply."""

    def control_block(self, tokens: list[bytes], payload: bytes) -> bytes:
        """A peer's command with a data block (snapshot, batch, adopt); the reply."""

    def stream_batch(self, epoch: int, first: int, last: int, payload: bytes) -> bytes:
        """``hk_batch`` from the primary of ``epoch``; the reply."""

    def stats_lines(self) -> list[tuple[bytes, bytes]]:
        """The ``stats`` command's name/value pairs."""
