"""One authenticated Raft peer connection, in place of PySyncObj's `TcpConnection`.

`AuthConnection` speaks `peer_auth`'s handshake first. Until it completes, the connection reads
only the fixed-size handshake messages (a stranger gets no buffer beyond 72 bytes); then every
frame is opened (AES-GCM, counter nonces) before it is decompressed or unpickled, and a length
header over `peer_auth.MAX_FRAME` closes the connection before the frame is buffered. Buffers
are bytearrays, so a large frame costs no quadratic copying. `PeerGuard` holds what the
connections of one transport share: the secret file, the handshakes in progress and the
peer-wire versions this node offers.

Versions (`peer_auth`): each connection agrees on the highest version both ends speak. A node
of a release before versions closes a hello that offers more than version 1 without a word;
the initiator then offers version 1 alone on its next dial to that peer, and its full range
again once that connection ends (the peer may have been upgraded meanwhile).

Everything here runs on PySyncObj's tick thread.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import time
from typing import Any

from hakeeper.config.secret_file import ClusterSecret, SecretFile
from hakeeper.coord import peer_auth
from hakeeper.coord.peer_auth import (
    LEGACY,
    FrameOpener,
    FrameRejected,
    FrameSealer,
    HandshakeFailed,
)
from hakeeper.coord.pysyncobj_compat import CONNECTION_STATE, POLL_EVENT_TYPE, set_keepalive
from hakeeper.errors import ConfigError, VersionMismatch
from hakeeper.model.wire_version import SUPPORTED, Format, VersionRange

log = logging.getLogger("hakeeper.coord.raft_transport")

HANDSHAKE_DEADLINE = 2.0
"""Seconds a connection may take from TCP connect to a proved secret; then it is closed."""
MAX_OUTPUT = 64 * 1024 * 1024
"""Unsent bytes queued for one peer before the connection is given up as stuck."""
RECV_CHUNK = 64 * 1024
READS_PER_EVENT = 16  # then the poller runs the other connections; level-triggered, so no loss
LOG_EVERY = 5.0  # one line per kind of refusal per this many seconds, with a count
WIRE_MAX_ENV = "HAKEEPER_RAFT_WIRE_MAX"
"""Caps the newest Raft peer-wire version this node offers: pins a node to the wire of the
release a cluster upgrades from, and lets the tests run a roll between two wire versions."""


def wire_versions(environ: dict[str, str] | None = None) -> VersionRange:
    """The Raft peer-wire versions this node offers (``HAKEEPER_RAFT_WIRE_MAX`` caps them)."""
    supported = SUPPORTED[Format.RAFT_PEER_WIRE]
    cap = (os.environ if environ is None else environ).get(WIRE_MAX_ENV, "").strip()
    if not cap:
        return supported
    if not cap.isdigit() or int(cap) not in supported:
        raise ConfigError(
            f"{WIRE_MAX_ENV}={cap!r}: this release speaks Raft peer-wire versions {supported}. "
            f"Fix: set it to one of them, or unset it"
        )
    return supported.capped(int(cap))


class _Phase:
    DISCONNECTED = 0
    CONNECTING = 1  # TCP connect in progress (initiator)
    AWAIT_HELLO = 2  # acceptor
    AWAIT_REPLY = 3  # initiator
    AWAIT_FINISH = 4  # acceptor
    ESTABLISHED = 5


_EXPECTED = {
    _Phase.AWAIT_HELLO: peer_auth.HELLO_BYTES,
    _Phase.AWAIT_REPLY: peer_auth.REPLY_BYTES,
    _Phase.AWAIT_FINISH: peer_auth.FINISH_BYTES,
}


class PeerGuard:
    """What the connections of one transport share: the secret file, the handshakes in
    progress (with their deadlines), and rate-limited logging of refusals."""

    def __init__(self, secret_file: SecretFile, versions: VersionRange | None = None) -> None:
        self._file = secret_file
        self.versions = wire_versions() if versions is None else versions
        self._problem: str | None = None
        self.pending: dict[AuthConnection, float] = {}
        self._noted: dict[str, tuple[float, int]] = {}
        self._speaking: dict[str, int] = {}
        self.legacy_peers: set[str] = set()  # to be offered version 1 alone on the next dial

    def offer(self, peer: str) -> VersionRange:
        """What to offer ``peer`` on a new dial (version 1 alone after it closed a fuller
        offer unanswered, as a release before versions does)."""
        if peer in self.legacy_peers and 1 in self.versions:
            return LEGACY
        return self.versions

    def speaking(self, peer: str, version: int) -> None:
        """Log the version a peer link speaks whenever it changes (a roll is visible)."""
        if self._speaking.get(peer) != version:
            self._speaking[peer] = version
            log.info("event=raft_peer_wire peer=%s version=%d offered=%s", peer, version,
                     self.versions)  # fmt: skip

    def secrets(self) -> ClusterSecret:
        """The secret file as it is now (re-read when it changed; the last good one kept)."""
        secret = self._file.get()
        if self._file.problem != self._problem:
            self._problem = self._file.problem
            if self._problem is not None:
                log.error("event=raft_secret_unreadable detail=%r (keeping the last good one)",
                          self._problem)  # fmt: skip
        return secret

    def accepted_pending(self, host: str | None = None) -> int:
        """Accepted connections still in their handshake (from ``host`` only, if given)."""
        return sum(
            1
            for conn in self.pending
            if not conn.initiator and (host is None or conn.peer_host == host)
        )

    def expire(self, now: float) -> None:
        for conn, deadline in list(self.pending.items()):
            if now >= deadline:
                self.note("handshake_timeout", conn.peer)
                conn.disconnect()

    def note(self, kind: str, peer: str, detail: str = "") -> None:
        """Log a refused peer, at most once per LOG_EVERY per kind (a flood writes no flood)."""
        now = time.monotonic()
        since, count = self._noted.get(kind, (0.0, 0))
        if now - since < LOG_EVERY:
            self._noted[kind] = (since, count + 1)
            return
        self._noted[kind] = (now, 0)
        extra = f" (+{count} more since the last line)" if count else ""
        log.warning("event=raft_peer_refused kind=%s peer=%s%s%s", kind, peer,
                    f" detail={detail!r}" if detail else "", extra)  # fmt: skip


class AuthConnection:
    """One peer connection; the interface of PySyncObj's `TcpConnection` that
    `TCPTransport` uses (connect, send, disconnect, state, callbacks)."""

    def __init__(
        self,
        poller: Any,
        guard: PeerGuard,
        *,
        timeout: float,
        send_buffer: int,
        recv_buffer: int,
        keepalive: tuple[int, int, int] | None,
        sock: socket.socket | None = None,
        peer: tuple[str, int] = ("?", 0),
    ) -> None:
        # TCPTransport reads and sets these (its Fernet layer, off here: no password given).
        self.encryptor = None
        self.sendRandKey = None
        self.recvRandKey = None
        self.peer_host = peer[0]
        self.peer = f"{peer[0]}:{peer[1]}"
        self.peer_secret: bytes | None = None  # the accepted secret the peer proved
        self.initiator = sock is None
        self._poller = poller
        self._guard = guard
        self._timeout = timeout
        self._send_buffer = send_buffer
        self._recv_buffer = recv_buffer
        self._keepalive = keepalive
        self._on_message: Any = None
        self._on_connected: Any = None
        self._on_disconnected: Any = None
        self._sock: socket.socket | None = None
        self._fileno: int | None = None
        self._phase = _Phase.DISCONNECTED
        self._in = bytearray()
        self._out = bytearray()
        self._last_read = time.monotonic()
        self._my_nonce = b""
        self._their_nonce = b""
        self._offer = LEGACY
        self._agreement = peer_auth.V1
        self._secret: ClusterSecret | None = None
        self._sealer: FrameSealer | None = None
        self._opener: FrameOpener | None = None
        if sock is not None:
            self._adopt(sock, _Phase.AWAIT_HELLO)

    # --- the TcpConnection interface --------------------------------------------------------

    def setOnConnectedCallback(self, callback: Any) -> None:  # PySyncObj's name
        self._on_connected = callback

    def setOnMessageReceivedCallback(self, callback: Any) -> None:
        self._on_message = callback

    def setOnDisconnectedCallback(self, callback: Any) -> None:
        self._on_disconnected = callback

    @property
    def wire_version(self) -> int | None:
        """The peer-wire version this link agreed on; None until its handshake completed."""
        return self._agreement.version if self._phase == _Phase.ESTABLISHED else None

    @property
    def state(self) -> int:
        if self._phase == _Phase.ESTABLISHED:
            return int(CONNECTION_STATE.CONNECTED)
        if self._phase == _Phase.DISCONNECTED:
            return int(CONNECTION_STATE.DISCONNECTED)
        return int(CONNECTION_STATE.CONNECTING)

    def fileno(self) -> int | None:
        return self._fileno

    def getSendBufferSize(self) -> int:
        return len(self._out)

    def connect(self, host: str, port: int) -> bool:
        """Start dialling (non-blocking); the handshake follows when TCP is up."""
        if host is None:
            return False
        self.disconnect()
        self.peer_host, self.peer = host, f"{host}:{port}"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            result = sock.connect_ex((host, port))
        except OSError:
            result = -1
        if result not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            sock.close()  # refused at once (nothing listens): the transport redials later
            return False
        self._adopt(sock, _Phase.CONNECTING)
        return True

    def send(self, message: Any) -> None:
        if self._phase != _Phase.ESTABLISHED or self._sealer is None or self._silent_too_long():
            return
        try:
            self._out += self._sealer.seal(message)
        except FrameRejected as exc:
            log.error("event=raft_message_too_large peer=%s detail=%r", self.peer, str(exc))
            self.disconnect()
            return
        if len(self._out) > MAX_OUTPUT:
            log.warning("event=raft_peer_stuck peer=%s queued=%d: closing", self.peer,
                        len(self._out))  # fmt: skip
            self.disconnect()
            return
        self._flush()
        if self._phase != _Phase.DISCONNECTED:
            self._watch()

    def disconnect(self) -> None:
        was_open = self._phase != _Phase.DISCONNECTED
        if was_open and self.initiator and self._offer == LEGACY:
            # The version-1-only dial is spent: the next one offers the full range again.
            self._guard.legacy_peers.discard(self.peer)
        self._guard.pending.pop(self, None)
        if self._fileno is not None:
            self._poller.unsubscribe(self._fileno)
            self._fileno = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._phase = _Phase.DISCONNECTED
        self._in = bytearray()
        self._out = bytearray()
        self._sealer = self._opener = None
        self._secret = None
        self.peer_secret = None
        if was_open and self._on_disconnected is not None:
            self._on_disconnected()

    # --- socket set-up and events --------------------------------------------------------

    def _adopt(self, sock: socket.socket, phase: int) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._send_buffer)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._recv_buffer)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._keepalive is not None:
            set_keepalive(sock, *self._keepalive)
        sock.setblocking(False)
        self._sock = sock
        self._fileno = sock.fileno()
        self._phase = phase
        self._last_read = time.monotonic()
        self._guard.pending[self] = self._last_read + HANDSHAKE_DEADLINE
        if phase == _Phase.AWAIT_HELLO:
            self._my_nonce = peer_auth.new_nonce()
        self._watch()

    def _watch(self) -> None:
        assert self._fileno is not None
        mask = POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.ERROR
        if self._out or self._phase == _Phase.CONNECTING:
            mask |= POLL_EVENT_TYPE.WRITE
        self._poller.subscribe(self._fileno, self._on_event, mask)

    def _on_event(self, fd: int, event: int) -> None:
        if fd != self._fileno or self._sock is None:
            # An event of this poll batch for a descriptor closed since: that number may
            # belong to a new connection already, so leave its registration alone.
            return
        if event & POLL_EVENT_TYPE.ERROR:
            self.disconnect()
            return
        if self._silent_too_long():
            return
        if self._phase == _Phase.CONNECTING:
            if self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self.disconnect()
                return
            self._phase = _Phase.AWAIT_REPLY
            self._my_nonce = peer_auth.new_nonce()
            self._offer = self._guard.offer(self.peer)
            self._out += peer_auth.hello(self._my_nonce, self._offer)
        if event & POLL_EVENT_TYPE.WRITE or self._out:
            self._flush()
        if event & POLL_EVENT_TYPE.READ and self._phase != _Phase.DISCONNECTED:
            self._read()
        if self._phase != _Phase.DISCONNECTED:
            self._watch()

    def _silent_too_long(self) -> bool:
        """Close an established link that read nothing for connectionTimeout (as PySyncObj)."""
        if self._phase == _Phase.ESTABLISHED and time.monotonic() - self._last_read > self._timeout:
            self.disconnect()
            return True
        return False

    def _flush(self) -> None:
        assert self._sock is not None
        while self._out:
            try:
                sent = self._sock.send(self._out)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.disconnect()
                return
            del self._out[:sent]

    def _read(self) -> None:
        for _ in range(READS_PER_EVENT):
            sock = self._sock
            if sock is None:
                return
            handshaking = self._phase != _Phase.ESTABLISHED
            # In the handshake, read exactly what the next message needs: a stranger gets no
            # buffer beyond 72 bytes, and anything after it stays in the kernel.
            want = _EXPECTED[self._phase] - len(self._in) if handshaking else RECV_CHUNK
            try:
                chunk = sock.recv(want)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.disconnect()
                return
            if not chunk:
                if self._phase == _Phase.AWAIT_REPLY and self._offer != LEGACY:
                    # Closed unanswered: what a release before versions does to this offer.
                    self._guard.legacy_peers.add(self.peer)
                self.disconnect()
                return
            self._last_read = time.monotonic()
            self._in += chunk
            if handshaking:
                if len(self._in) == _EXPECTED[self._phase]:
                    self._handshake_step()
            elif not self._deliver():
                return

    def _handshake_step(self) -> None:
        data = bytes(self._in)
        self._in.clear()
        try:
            if self._phase == _Phase.AWAIT_HELLO:
                offer = peer_auth.parse_hello(data)
                self._their_nonce = offer.nonce
                try:
                    self._agreement = peer_auth.choose(self._guard.versions, offer)
                except VersionMismatch as exc:
                    self._guard.note("version_mismatch", self.peer, str(exc))
                    self._out += peer_auth.refusal(self._guard.versions)
                    self._flush()
                    self.disconnect()
                    return
                self._secret = self._guard.secrets()
                self._out += peer_auth.reply(self._secret.current, self._their_nonce,
                                             self._my_nonce, self._agreement)  # fmt: skip
                self._phase = _Phase.AWAIT_FINISH
                self._flush()
            elif self._phase == _Phase.AWAIT_REPLY:
                self._secret = self._guard.secrets()
                self._their_nonce, proved, self._agreement = peer_auth.check_reply(
                    data, self._secret.accepted, self._my_nonce, self._offer
                )
                mine, agreed = self._secret.current, self._agreement
                self._out += peer_auth.finish(mine, self._my_nonce, self._their_nonce, agreed)
                keys = peer_auth.session_keys(
                    proved, mine, self._my_nonce, self._their_nonce, agreed
                )
                self._established(proved, keys.initiator_to_acceptor, keys.acceptor_to_initiator)
            else:
                assert self._secret is not None
                proved = peer_auth.check_finish(
                    data, self._secret.accepted, self._their_nonce, self._my_nonce,
                    self._agreement,
                )  # fmt: skip
                keys = peer_auth.session_keys(
                    self._secret.current, proved, self._their_nonce, self._my_nonce,
                    self._agreement,
                )  # fmt: skip
                self._established(proved, keys.acceptor_to_initiator, keys.initiator_to_acceptor)
        except peer_auth.VersionRefused as exc:
            self._guard.note("version_refused", self.peer, str(exc))
            self.disconnect()
        except HandshakeFailed as exc:
            self._guard.note("handshake_failed", self.peer, str(exc))
            self.disconnect()

    def _established(self, proved: bytes, send_key: bytes, recv_key: bytes) -> None:
        self._guard.pending.pop(self, None)
        self.peer_secret = proved
        self._sealer = FrameSealer(send_key)
        self._opener = FrameOpener(recv_key)
        self._phase = _Phase.ESTABLISHED
        self._guard.speaking(self.peer, self._agreement.version)
        self._flush()
        if self._phase == _Phase.ESTABLISHED and self._on_connected is not None:
            self._on_connected()

    def _deliver(self) -> bool:
        """Open and hand on every complete frame; False once the connection is closed."""
        assert self._opener is not None
        buf, pos = self._in, 0
        try:
            while len(buf) - pos >= peer_auth.HEADER.size:
                header = bytes(buf[pos : pos + peer_auth.HEADER.size])
                length = self._opener.frame_length(header)
                end = pos + peer_auth.HEADER.size + length
                if len(buf) < end:
                    break
                message = self._opener.open(header, bytes(buf[pos + peer_auth.HEADER.size : end]))
                pos = end
                if self._on_message is not None:
                    self._on_message(message)
                if self._phase != _Phase.ESTABLISHED:
                    return False
        except FrameRejected as exc:
            self._guard.note("frame_rejected", self.peer, str(exc))
            self.disconnect()
            return False
        del buf[:pos]
        return True
