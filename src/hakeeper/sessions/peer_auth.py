"""The peer port's handshake: both ends prove the cluster secret before any command is parsed.

A mutual HMAC-SHA256 challenge over two fresh random nonces, one from each side::

    connector → listener   HK_AUTH <versions> <client nonce>
    listener  → connector  HK_AUTH <version> <server nonce> <HMAC(secret, "server" | cn | sn)>
    connector → listener   HK_PROOF <HMAC(secret, "client" | cn | sn)>
    listener  → connector  HK_OK            (or HK_DENIED, then the connection closes)

Versions (`hakeeper.model.wire_version`, `Format.SESSION_PEER_WIRE`): the connector offers
``<v>`` or ``<oldest>-<newest>``, the listener answers with the highest version both speak, or
``HK_VERSION <its range>`` and closes when there is none (the connector then says which side
to upgrade). Only version 1 exists so far, so the bytes are those of the first release.

Each side proves with its ``current`` secret and accepts any of its ``accepted`` ones (a
rotation of the secret file needs no restart). The role names in the MAC keep a proof from
being reflected back to the side that asked for it; each side's own nonce keeps a recorded
proof from being replayed. Nothing is encrypted: the stream carries session data in clear,
so the peer network must be the cluster's own (see docs/sessions.md).

This module holds the messages and the connector side: `open_peer` (for protocols: streams,
forwarding) and `handshake_stream` (for the asyncio-streams client). The listener side is
`peer_gate.PeerGate`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from ssl import SSLContext
from typing import TypeVar, cast

from hakeeper.config.secret_file import ClusterSecret, SecretFile
from hakeeper.model.address import split_address
from hakeeper.model.wire_version import (
    MAX_VERSION,
    SUPPORTED,
    Format,
    VersionRange,
    negotiate,
    version_mismatch_text,
)

MAX_HANDSHAKE_BYTES = 512
NONCE_BYTES = 16
SERVER_ROLE = b"hakeeper-sessions server\0"
CLIENT_ROLE = b"hakeeper-sessions client\0"
OK_LINE = b"HK_OK\r\n"
DENIED_LINE = b"HK_DENIED\r\n"
VERSION_REFUSED = b"HK_VERSION"
WIRE = SUPPORTED[Format.SESSION_PEER_WIRE]

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


def _token(versions: VersionRange) -> bytes:
    if versions.oldest == versions.newest:
        return b"%d" % versions.newest
    return b"%d-%d" % (versions.oldest, versions.newest)


def _versions(token: bytes) -> VersionRange | None:
    """``<v>`` or ``<oldest>-<newest>``; None when malformed."""
    low, _, high = token.partition(b"-")
    high = high or low
    if not (low.isdigit() and high.isdigit() and len(low) <= 3 and len(high) <= 3):
        return None
    if not 1 <= int(low) <= int(high) <= MAX_VERSION:
        return None
    return VersionRange(int(low), int(high))


def client_hello(client_nonce: bytes, offer: VersionRange = WIRE) -> bytes:
    return b"HK_AUTH %s %s\r\n" % (_token(offer), client_nonce.hex().encode())


@dataclass(frozen=True, slots=True)
class ClientHello:
    nonce: bytes
    version: int  # the highest version both ends speak


def parse_client_hello(line: bytes, speaks: VersionRange = WIRE) -> ClientHello | None:
    """The connector's nonce and the agreed version; None for anything but a hello, and
    VersionMismatch when the offer shares no version with ``speaks``."""
    parts = line.split()
    if len(parts) != 3 or parts[0] != b"HK_AUTH":
        return None
    offer = _versions(parts[1])
    nonce = _hex_field(parts[2], NONCE_BYTES)
    if offer is None or nonce is None:
        return None
    return ClientHello(nonce, negotiate(Format.SESSION_PEER_WIRE, speaks, offer))


def version_refusal(speaks: VersionRange = WIRE) -> bytes:
    return b"%s %s\r\n" % (VERSION_REFUSED, _token(speaks))


def server_challenge(
    secret: ClusterSecret, client_nonce: bytes, server_nonce: bytes, version: int = 1
) -> bytes:
    mac = _mac(secret.current, SERVER_ROLE, client_nonce, server_nonce)
    return b"HK_AUTH %d %s %s\r\n" % (version, server_nonce.hex().encode(), mac.hex().encode())


def check_server_challenge(
    secret: ClusterSecret, client_nonce: bytes, line: bytes, offered: VersionRange = WIRE
) -> bytes:
    """The server's nonce, once its MAC proves the secret; PeerAuthError otherwise."""
    parts = line.split()
    if len(parts) == 2 and parts[0] == VERSION_REFUSED:
        theirs = _versions(parts[1])
        raise PeerAuthError(
            version_mismatch_text(Format.SESSION_PEER_WIRE, offered, theirs)
            if theirs is not None
            else f"the peer refused {Format.SESSION_PEER_WIRE} versions {offered}"
        )
    chosen = _versions(parts[1]) if len(parts) == 4 else None
    if (
        parts[:1] != [b"HK_AUTH"]
        or chosen is None
        or chosen.oldest != chosen.newest
        or chosen.newest not in offered
    ):
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
