"""PySyncObj's TCP transport with every peer authenticated before a byte of it is parsed.

PySyncObj's own `TcpConnection` unpickles whatever arrives (its optional Fernet password
aside), grows its receive buffer by ``bytes +=`` with no bound, keeps a silent connection for
``connectionTimeout`` and unbinds its listener for good on one ``accept()`` error. Rather than
patch those classes, this module replaces them below PySyncObj's `TCPTransport`, whose node
bookkeeping (who dials whom, reconnects, read-only clients) stays as it is:

* `AuthConnection` (`raft_connection`) speaks `peer_auth`'s handshake first; until it
  completes it reads only the fixed-size handshake messages; then every frame is opened
  (AES-GCM, counter nonces) before it is decompressed or unpickled, and a length header over
  `MAX_FRAME` closes the connection before the frame is buffered (bytearray buffers).
* `GuardedServer` closes a new connection at once while `MAX_PENDING` others are still in
  their handshake (`PEER_RESERVE` more are let in from each member's host), and on an
  ``accept()`` error (EMFILE and the rest) logs, stops watching the listener for a short
  back-off and then serves again.
* `AuthTransport` closes handshakes older than `HANDSHAKE_DEADLINE`, and when the secret file
  changes closes every connection whose peer proved a secret no longer accepted: the peer
  redials and proves the new one (rotation without restart).

Everything here runs on PySyncObj's tick thread.
"""

from __future__ import annotations

import errno
import functools
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from hakeeper.config.secret_file import SecretFile
from hakeeper.coord.pysyncobj_compat import POLL_EVENT_TYPE, TCPTransport, globalDnsResolver
from hakeeper.coord.raft_connection import AuthConnection, PeerGuard

log = logging.getLogger(__name__)

MAX_PENDING = 64
"""Accepted connections still in their handshake; more are closed at accept..."""
PEER_RESERVE = 8
"""...except up to this many more from each configured member's host, so that a flood from
elsewhere cannot keep a restarted member (or the agents' clients on the members' hosts) from
reconnecting. TCP needs the SYN-ACK, so a source address is not forged from off the path."""
ACCEPTS_PER_EVENT = 32
ACCEPT_BACKOFF = (0.05, 1.0)  # first and longest pause after an accept() error
LISTEN_BACKLOG = 128
ROTATION_CHECK = 0.5  # seconds between looks at the secret file for a changed accepted set


class GuardedServer:
    """The listener: caps connections in their handshake and survives accept() errors."""

    def __init__(
        self,
        poller: Any,
        host: str,
        port: int,
        guard: PeerGuard,
        on_connection: Any,
        peer_hosts: Callable[[], frozenset[str]],
        **conn: Any,
    ) -> None:
        self._poller = poller
        self._peer_hosts = peer_hosts
        self._address = (host, port)
        self._guard = guard
        self._on_connection = on_connection
        self._conn_options = conn
        self._sock: socket.socket | None = None
        self._resume_at: float | None = None
        self._backoff = ACCEPT_BACKOFF[0]

    def bind(self) -> None:
        family = socket.AF_INET6 if ":" in self._address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setblocking(False)
            sock.bind(self._address)
            sock.listen(LISTEN_BACKLOG)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._watch()

    def unbind(self) -> None:
        if self._sock is not None:
            self._poller.unsubscribe(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def tick(self, now: float) -> None:
        if self._resume_at is not None and now >= self._resume_at and self._sock is not None:
            self._resume_at = None
            self._watch()

    def _watch(self) -> None:
        assert self._sock is not None
        self._poller.subscribe(
            self._sock.fileno(), self._on_event, POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.ERROR
        )

    def _pause(self, why: str) -> None:
        """Stop watching the listener for a moment: a level-triggered poll would otherwise
        spin on an accept() that keeps failing (EMFILE until a descriptor is freed)."""
        assert self._sock is not None
        log.warning("event=raft_accept_failed detail=%r retry_in=%.2fs", why, self._backoff)
        self._poller.unsubscribe(self._sock.fileno())
        self._resume_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, ACCEPT_BACKOFF[1])

    def _on_event(self, fd: int, event: int) -> None:
        if self._sock is None or fd != self._sock.fileno():
            return  # a stale event of this poll batch: the number may be reused already
        if event & POLL_EVENT_TYPE.ERROR:
            self._pause("error condition on the listening socket")
            return
        for _ in range(ACCEPTS_PER_EVENT):
            try:
                sock, addr = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue  # that one client gave up; the listener is fine
                self._pause(f"accept(): {exc.strerror or exc}")
                return
            self._backoff = ACCEPT_BACKOFF[0]
            peer = (addr[0], addr[1])
            if not self._admit(addr[0]):
                sock.close()
                self._guard.note("too_many_unauthenticated", f"{addr[0]}:{addr[1]}",
                                 f"limit {MAX_PENDING}")  # fmt: skip
                continue
            try:
                conn = AuthConnection(self._poller, self._guard, sock=sock, peer=peer,
                                      **self._conn_options)  # fmt: skip
            except OSError:
                sock.close()  # reset before its options could be set
                continue
            self._on_connection(conn)

    def _admit(self, host: str) -> bool:
        if self._guard.accepted_pending() < MAX_PENDING:
            return True
        return host in self._peer_hosts() and self._guard.accepted_pending(host) < PEER_RESERVE


class AuthTransport(TCPTransport):  # type: ignore[misc]
    """`TCPTransport` on `AuthConnection` and `GuardedServer`.

    PySyncObj builds it as ``transportClass(syncObj, selfNode, otherNodes)``; pass
    ``functools.partial(AuthTransport, secret_file=...)``."""

    def __init__(self, syncObj: Any, selfNode: Any, otherNodes: Any, *, secret_file: SecretFile):
        self._guard = PeerGuard(secret_file)
        self._accepted = self._guard.secrets().accepted
        self._next_rotation_check = 0.0
        super().__init__(syncObj, selfNode, otherNodes)

    def _conn_options(self) -> dict[str, Any]:
        conf = self._syncObj.conf
        return {
            "timeout": conf.connectionTimeout,
            "send_buffer": conf.sendBufferSize,
            "recv_buffer": conf.recvBufferSize,
            "keepalive": conf.tcp_keepalive,
        }

    def _createServer(self) -> None:  # overrides PySyncObj
        address = self._syncObj.conf.bindAddress or self._selfNode.address
        host, port = address.rsplit(":", 1)
        self._server = GuardedServer(
            self._syncObj._poller,
            globalDnsResolver().resolve(host),
            int(port),
            self._guard,
            self._onNewIncomingConnection,
            self._peer_hosts,
            **self._conn_options(),
        )

    def _peer_hosts(self) -> frozenset[str]:
        """The addresses of every member's host, this one's included (asked only when the
        handshake cap is full)."""
        nodes = [*self._nodes, *([self._selfNode] if self._selfNode is not None else [])]
        return frozenset(node.ip for node in nodes)

    def addNode(self, node: Any) -> None:  # overrides PySyncObj
        self._nodes.add(node)
        self._nodeAddrToNode[node.address] = node
        if self._shouldConnect(node):
            conn = AuthConnection(self._syncObj._poller, self._guard, **self._conn_options())
            conn.setOnConnectedCallback(functools.partial(self._onOutgoingConnected, conn))
            conn.setOnMessageReceivedCallback(functools.partial(self._onMessageReceived, node))
            conn.setOnDisconnectedCallback(functools.partial(self._onDisconnected, conn))
            self._connections[node] = conn

    def peer_wire(self, node: Any) -> int | None:
        """The peer-wire version of the established link to ``node``; None without one
        (what pre-vote asks to know whether the peer answers it)."""
        conn = self._connections.get(node)
        return conn.wire_version if isinstance(conn, AuthConnection) else None

    def _onTick(self) -> None:  # overrides PySyncObj
        super()._onTick()
        now = time.monotonic()
        if isinstance(self._server, GuardedServer):
            self._server.tick(now)
        self._guard.expire(now)
        if now >= self._next_rotation_check:
            self._next_rotation_check = now + ROTATION_CHECK
            self._drop_revoked()

    def _drop_revoked(self) -> None:
        """After the secret file changed, close every connection whose peer proved a secret
        that is no longer accepted; the peer redials and proves one that is."""
        accepted = self._guard.secrets().accepted
        if accepted == self._accepted:
            return
        self._accepted = accepted
        log.info("event=raft_secret_changed accepted=%d", len(accepted))
        for conn in [*self._connections.values(), *self._unknownConnections]:
            if conn.peer_secret is not None and conn.peer_secret not in accepted:
                log.info("event=raft_peer_reauthenticate peer=%s", conn.peer)
                conn.disconnect()
