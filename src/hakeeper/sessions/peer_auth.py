"""The peer port's handshake: both ends prove the cluster secret before any command is parsed.

A mutual HMAC-SHA256 challenge over two fresh random nonces, one from each side::

    connector → listener   HK_AUTH 1 <client nonce>
    listener  → connector  HK_AUTH 1 <server nonce> <HMAC(secret, "server" | cn | sn)>
    connector → listener   HK_PROOF <HMAC(secret, "client" | cn | sn)>
    listener  → connector  HK_OK            (or HK_DENIED, then the connection closes)

Each side proves with its ``current`` secret and accepts any of its ``accepted`` ones (a
rotation of the secret file needs no restart). The role names in the MAC keep a proof from
being reflected back to the side that asked for it; each side's own nonce keeps a recorded
proof from being replayed. Nothing is encrypted: the stream carries session data in clear,
so the peer network must be the cluster's own (see docs/sessions.md).

The listener side is `PeerGate`, an ``asyncio.Protocol`` that hands its transport to a
`MemcacheProtocol` in peer mode once the connector proved the secret; until then it holds
at most `MAX_HANDSHAKE_BYTES`, for at most `HANDSHAKE_TIMEOUT` seconds, and at most
`MAX_PENDING` such connections exist at once. The connector side is `open_peer` (for
protocols: streams, forwarding) and `handshake_stream` (for the asyncio-streams client).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from ssl import SSLContext
from typing import TYPE_CHECKING, TypeVar, cast

from hakeeper.config.secret_file import ClusterSecret, SecretFile
from hakeeper.model.address import split_address
from hakeeper.sessions.protocol import MemcacheProtocol

if TYPE_CHECKING:
    from hakeeper.sessions.node import Node

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 5.0
MAX_HANDSHAKE_BYTES = 512
MAX_PENDING = 64
NONCE_BYTES = 16
SERVER_ROLE = b"hakeeper-sessions server\0"
CLIENT_ROLE = b"hakeeper-sessions client\0"
OK_LINE = b"HK_OK\r\n"
DENIED_LINE = b"HK_DENIED\r\n"

P = TypeVar("P", bound=asyncio.Protocol)


class PeerAuthError(ConnectionError):
    """The other end did not prove the cluster secret (or broke the handshake)."""


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


def _mac(secret: bytes, role: bytes, client_nonce: bytes, server_nonce: bytes) -> bytes:
    return hmac.new(secret, role + client_nonce + server_nonce, hashlib.sha256).digest()


def _proves(
    secret: ClusterSecret, role: bytes, client_nonce: bytes, server_nonce: bytes, mac: bytes
) -> bool:
    # Every accepted secret is tried (no early exit on a match position an attacker could time).
    found = False
    for candidate in secret.accepted:
        if hmac.compare_digest(_mac(candidate, role, client_nonce, server_nonce), mac):
            found = True
    return found


def _hex_field(token: bytes, size: int) -> bytes | None:
    if len(token) != 2 * size:
        return None
    try:
        return bytes.fromhex(token.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None


def client_hello(client_nonce: bytes) -> bytes:
    return b"HK_AUTH 1 %s\r\n" % client_nonce.hex().encode()


def parse_client_hello(line: bytes) -> bytes | None:
    parts = line.split()
    if len(parts) != 3 or parts[0] != b"HK_AUTH" or parts[1] != b"1":
        return None
    return _hex_field(parts[2], NONCE_BYTES)


def server_challenge(secret: ClusterSecret, client_nonce: bytes, server_nonce: bytes) -> bytes:
    mac = _mac(secret.current, SERVER_ROLE, client_nonce, server_nonce)
    return b"HK_AUTH 1 %s %s\r\n" % (server_nonce.hex().encode(), mac.hex().encode())


def check_server_challenge(secret: ClusterSecret, client_nonce: bytes, line: bytes) -> bytes:
    """The server's nonce, once its MAC proves the secret; PeerAuthError otherwise."""
    parts = line.split()
    if len(parts) != 4 or parts[0] != b"HK_AUTH" or parts[1] != b"1":
        raise PeerAuthError(
            f"not a hakeeper sessions peer port (it answered {line[:60]!r}); point the "
            "address at the node's --peer-listen port"
        )
    server_nonce = _hex_field(parts[2], NONCE_BYTES)
    mac = _hex_field(parts[3], hashlib.sha256().digest_size)
    if server_nonce is None or mac is None:
        raise PeerAuthError(f"malformed peer challenge {line[:120]!r}")
    if not _proves(secret, SERVER_ROLE, client_nonce, server_nonce, mac):
        raise PeerAuthError(
            "the peer did not prove the cluster secret: give every node the same secret file"
        )
    return server_nonce


def client_proof(secret: ClusterSecret, client_nonce: bytes, server_nonce: bytes) -> bytes:
    mac = _mac(secret.current, CLIENT_ROLE, client_nonce, server_nonce)
    return b"HK_PROOF %s\r\n" % mac.hex().encode()


def check_client_proof(
    secret: ClusterSecret, client_nonce: bytes, server_nonce: bytes, line: bytes
) -> bool:
    parts = line.split()
    if len(parts) != 2 or parts[0] != b"HK_PROOF":
        return False
    mac = _hex_field(parts[1], hashlib.sha256().digest_size)
    return mac is not None and _proves(secret, CLIENT_ROLE, client_nonce, server_nonce, mac)


def _denied(line: bytes) -> PeerAuthError:
    if line == DENIED_LINE:
        return PeerAuthError(
            "the peer refused this node's proof of the cluster secret: give every node the "
            "same secret file"
        )
    return PeerAuthError(f"unexpected answer to the proof: {line[:60]!r}")


# --- listener side ------------------------------------------------------------------------------


class PeerGate(asyncio.Protocol):
    """A peer-port connection before it proved the secret: bounded in bytes, time and number."""

    __slots__ = ("_buf", "_client_nonce", "_node", "_server_nonce", "_timer", "transport")

    def __init__(self, node: Node) -> None:
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
            nonce = parse_client_hello(line)
            if nonce is None:
                self._fail(f"not a peer handshake: {line[:40]!r}")
                return
            self._client_nonce = nonce
            secret = self._node.secret()
            transport.write(server_challenge(secret, nonce, self._server_nonce))
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


# --- connector side -----------------------------------------------------------------------------


class _Handshake(asyncio.Protocol):
    """The connector's side, until HK_OK; then the caller's protocol takes the transport."""

    def __init__(self, secret: ClusterSecret) -> None:
        self._secret = secret
        self._nonce = new_nonce()
        self.buf = bytearray()
        self._stage = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(client_hello(self._nonce))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(
                PeerAuthError(f"the peer closed the connection during the handshake ({exc!r})")
            )

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while not self.done.done():
            nl = self.buf.find(b"\n")
            if nl < 0:
                if len(self.buf) > MAX_HANDSHAKE_BYTES:
                    self.done.set_exception(PeerAuthError("handshake line too long"))
                return
            line = bytes(self.buf[: nl + 1])
            del self.buf[: nl + 1]
            try:
                if self._stage == 0:
                    server_nonce = check_server_challenge(self._secret, self._nonce, line)
                    assert self.transport is not None
                    self.transport.write(client_proof(self._secret, self._nonce, server_nonce))
                    self._stage = 1
                elif line == OK_LINE:
                    self.done.set_result(None)
                else:
                    raise _denied(line)
            except PeerAuthError as exc:
                self.done.set_exception(exc)


async def open_peer(
    address: str,
    secret: SecretFile,
    factory: Callable[[], P],
    timeout: float,
    *,
    ssl: SSLContext | None = None,
) -> P:
    """Connect to a node's peer port (over TLS with ``ssl``), prove the secret both ways,
    hand the connection over to ``factory()``.

    Raises OSError (PeerAuthError and ssl.SSLError among them), TimeoutError, or ValueError
    for an address that is not host:port.
    """
    host, port = split_address(address)
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        transport, shake = await loop.create_connection(
            lambda: _Handshake(secret.get()),
            host,
            port,
            ssl=ssl,
            server_hostname=host if ssl is not None else None,
        )
        try:
            await shake.done
        except BaseException:
            transport.close()
            raise
    if shake.buf:
        transport.close()
        raise PeerAuthError("the peer sent data before this side's first command")
    protocol = factory()
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    return protocol


async def handshake_stream(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, secret: ClusterSecret
) -> None:
    """The connector's side on asyncio streams (the caller bounds it in time)."""
    nonce = new_nonce()
    writer.write(client_hello(nonce))
    line = await reader.readuntil(b"\n")
    server_nonce = check_server_challenge(secret, nonce, line)
    writer.write(client_proof(secret, nonce, server_nonce))
    line = await reader.readuntil(b"\n")
    if line != OK_LINE:
        raise _denied(line)
