"""The listener side of the peer port: a connection proves the cluster secret, then speaks.

`PeerGate` runs `peer_auth`'s handshake on a new peer-port connection and, once the
connector proved the secret, hands its transport to a `MemcacheProtocol` in peer mode.
Until then it holds at most `MAX_HANDSHAKE_BYTES`, for at most `HANDSHAKE_TIMEOUT` seconds,
and at most `MAX_PENDING` such connections exist at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from hakeeper.errors import VersionMismatch
from hakeeper.sessions.boundary import NodeSide
from hakeeper.sessions.peer_auth import (
    DENIED_LINE,
    MAX_HANDSHAKE_BYTES,
    OK_LINE,
    check_client_proof,
    new_nonce,
    parse_client_hello,
    server_challenge,
    version_refusal,
)
from hakeeper.sessions.protocol import MemcacheProtocol

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 5.0
MAX_PENDING = 64


class PeerGate(asyncio.Protocol):
    """A peer-port connection before it proved the secret: bounded in bytes, time and number."""

    __slots__ = ("_buf", "_client_nonce", "_node", "_server_nonce", "_timer", "transport")

    def __init__(self, node: NodeSide) -> None:
        self._node = node
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._client_nonce: bytes | None = None
        self._server_nonce = new_nonce()
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        node = self._node
        if node.pending_peers >= MAX_PENDING:
            log.warning("event=sessions.peer_refused reason=too_many_pending_handshakes")
            self.transport.close()
            self.transport = None
            return
        node.pending_peers += 1
        self._timer = asyncio.get_running_loop().call_later(
            HANDSHAKE_TIMEOUT, self._fail, "no proof of the cluster secret in time"
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        buf = self._buf
        buf += data
        while self.transport is not None:
            nl = buf.find(b"\n")
            if nl < 0:
                if len(buf) > MAX_HANDSHAKE_BYTES:
                    self._fail("handshake line too long")
                return
            line = bytes(buf[: nl + 1])
            del buf[: nl + 1]
            self._line(line)

    def _line(self, line: bytes) -> None:
        transport = self.transport
        assert transport is not None
        if self._client_nonce is None:
            try:
                hello = parse_client_hello(line)
            except VersionMismatch as exc:
                transport.write(version_refusal())
                self._fail(str(exc))
                return
            if hello is None:
                self._fail(f"not a peer handshake: {line[:40]!r}")
                return
            self._client_nonce = hello.nonce
            secret = self._node.secret()
            transport.write(server_challenge(secret, hello.nonce, self._server_nonce,
                                             hello.version))  # fmt: skip
            return
        secret = self._node.secret()
        if not check_client_proof(secret, self._client_nonce, self._server_nonce, line):
            transport.write(DENIED_LINE)
            self._fail("wrong proof of the cluster secret")
            return
        # Proven: from here on the connection is a peer-mode memcached connection.
        self._finish()
        self.transport = None
        transport.write(OK_LINE)
        conn = MemcacheProtocol(self._node, peer=True)
        transport.set_protocol(conn)
        conn.connection_made(transport)
        rest = bytes(self._buf)
        self._buf = bytearray()
        if rest:
            conn.data_received(rest)

    def _fail(self, reason: str) -> None:
        transport = self.transport
        if transport is None:
            return
        peer = transport.get_extra_info("peername")
        log.warning("event=sessions.peer_refused peer=%s reason=%r", peer, reason)
        self.transport = None
        self._finish()
        transport.close()

    def _finish(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._node.pending_peers -= 1
