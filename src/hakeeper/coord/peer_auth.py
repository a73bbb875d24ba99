"""Proof of the cluster secret between two Raft peers, and the sealed frames that follow.

The handshake (fixed sizes, so nothing is parsed before the peer has proved the secret):

1. initiator -> acceptor: ``MAGIC`` + initiator nonce (32 random bytes)
2. acceptor -> initiator: ``MAGIC`` + acceptor nonce + HMAC(acceptor's current secret,
   "acceptor" label + both nonces)
3. initiator -> acceptor: HMAC(initiator's current secret, "initiator" label + both nonces)

Each side checks the other's proof against every secret it accepts (`ClusterSecret.accepted`,
for rotation) with `hmac.compare_digest`. The labels keep one side's proof from being replayed
as the other's, and the fresh nonce of each side keeps a recorded proof from being replayed on
a later connection.

Afterwards each direction has its own AES-256-GCM key, derived (HKDF-SHA256) from both secrets
that were proved and both nonces. Frames carry no nonce: each side counts the frames it sent
and received, so a replayed, dropped, reordered or reflected frame fails to open and the
connection is closed. The 4-byte length header is authenticated as associated data, and a
length over `MAX_FRAME` is refused before anything is buffered.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"HKRAFT\x01\x00"
NONCE_BYTES = 32
PROOF_BYTES = 32
HELLO_BYTES = len(MAGIC) + NONCE_BYTES
REPLY_BYTES = len(MAGIC) + NONCE_BYTES + PROOF_BYTES
FINISH_BYTES = PROOF_BYTES

HEADER = struct.Struct(">I")
TAG_BYTES = 16
MAX_FRAME = 4 * 1024 * 1024
"""Largest sealed frame. PySyncObj sends log entries in 64 KiB batches and snapshots in
64 KiB chunks; one command may be up to `raft_state.MAX_COMMAND_BYTES` (checked before it is
proposed), which fits with room to spare."""
MAX_MESSAGE = 4 * MAX_FRAME
"""Largest message after decompression: bounds a compressed frame that expands without end."""
COMPRESS_FROM = 4096  # smaller messages are sent as they are: zlib would cost more than it saves

_RAW, _ZLIB = b"\x00", b"\x01"
_ACCEPTOR_LABEL = b"hakeeper raft acceptor proof v1"
_INITIATOR_LABEL = b"hakeeper raft initiator proof v1"


class HandshakeFailed(Exception):
    """The peer did not prove a secret this side accepts, or spoke another protocol."""


class FrameRejected(Exception):
    """A frame failed to open: too large, forged, replayed, reordered or undecodable."""


def new_nonce() -> bytes:
    return os.urandom(NONCE_BYTES)


def hello(initiator_nonce: bytes) -> bytes:
    return MAGIC + initiator_nonce


def parse_hello(data: bytes) -> bytes:
    """The initiator's nonce; HandshakeFailed for anything but a hello of this protocol."""
    if len(data) != HELLO_BYTES or not hmac.compare_digest(data[: len(MAGIC)], MAGIC):
        raise HandshakeFailed("not a hakeeper raft hello (another protocol or version)")
    return data[len(MAGIC) :]


def _proof(secret: bytes, label: bytes, initiator_nonce: bytes, acceptor_nonce: bytes) -> bytes:
    return hmac.new(secret, label + initiator_nonce + acceptor_nonce, hashlib.sha256).digest()


def _match(proof: bytes, accepted: Sequence[bytes], label: bytes, n_i: bytes, n_a: bytes) -> bytes:
    """The accepted secret ``proof`` was made with; every secret is tried (constant work)."""
    found: bytes | None = None
    for secret in accepted:
        if hmac.compare_digest(proof, _proof(secret, label, n_i, n_a)):
            found = secret
    if found is None:
        raise HandshakeFailed("the peer's proof matches no accepted cluster secret")
    return found


def reply(current: bytes, initiator_nonce: bytes, acceptor_nonce: bytes) -> bytes:
    proof = _proof(current, _ACCEPTOR_LABEL, initiator_nonce, acceptor_nonce)
    return MAGIC + acceptor_nonce + proof


def check_reply(
    data: bytes, accepted: Sequence[bytes], initiator_nonce: bytes
) -> tuple[bytes, bytes]:
    """(acceptor nonce, the secret the acceptor proved) from its reply, or HandshakeFailed."""
    if len(data) != REPLY_BYTES or not hmac.compare_digest(data[: len(MAGIC)], MAGIC):
        raise HandshakeFailed("not a hakeeper raft reply (another protocol or version)")
    acceptor_nonce = data[len(MAGIC) : len(MAGIC) + NONCE_BYTES]
    proof = data[len(MAGIC) + NONCE_BYTES :]
    secret = _match(proof, accepted, _ACCEPTOR_LABEL, initiator_nonce, acceptor_nonce)
    return acceptor_nonce, secret


def finish(current: bytes, initiator_nonce: bytes, acceptor_nonce: bytes) -> bytes:
    return _proof(current, _INITIATOR_LABEL, initiator_nonce, acceptor_nonce)


def check_finish(
    data: bytes, accepted: Sequence[bytes], initiator_nonce: bytes, acceptor_nonce: bytes
) -> bytes:
    """The secret the initiator proved with, or HandshakeFailed."""
    return _match(data, accepted, _INITIATOR_LABEL, initiator_nonce, acceptor_nonce)


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """Both directions' keys of one connection, as the initiator names them."""

    initiator_to_acceptor: bytes
    acceptor_to_initiator: bytes


def session_keys(
    acceptor_secret: bytes, initiator_secret: bytes, initiator_nonce: bytes, acceptor_nonce: bytes
) -> SessionKeys:
    """Keys bound to both proved secrets and both nonces: fresh for every connection."""
    material = HKDF(
        algorithm=hashes.SHA256(),
        length=64,
        salt=initiator_nonce + acceptor_nonce,
        info=b"hakeeper raft frame keys v1",
    ).derive(
        HEADER.pack(len(acceptor_secret)) + acceptor_secret + initiator_secret,
    )
    return SessionKeys(material[:32], material[32:])


class FrameSealer:
    """Seals outgoing messages: pickle, zlib when large, AES-GCM under a counter nonce."""

    __slots__ = ("_aead", "_counter")

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self._counter = 0

    def seal(self, message: Any) -> bytes:
        body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        plain = _ZLIB + zlib.compress(body, 1) if len(body) >= COMPRESS_FROM else _RAW + body
        header = HEADER.pack(len(plain) + TAG_BYTES)
        if len(plain) + TAG_BYTES > MAX_FRAME:
            raise FrameRejected(
                f"a raft message of {len(plain)} bytes exceeds the frame bound {MAX_FRAME}"
            )
        nonce = self._counter.to_bytes(12, "big")
        self._counter += 1
        return header + self._aead.encrypt(nonce, plain, header)


class FrameOpener:
    """Opens incoming frames in order; anything that does not authenticate is refused
    before it is decompressed or unpickled."""

    __slots__ = ("_aead", "_counter")

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self._counter = 0

    @staticmethod
    def frame_length(header: bytes) -> int:
        """The sealed length a header announces; FrameRejected when it is out of bounds."""
        length: int = HEADER.unpack(header)[0]
        if not TAG_BYTES < length <= MAX_FRAME:
            raise FrameRejected(f"frame length {length} is outside 17..{MAX_FRAME} bytes")
        return length

    def open(self, header: bytes, sealed: bytes) -> Any:
        nonce = self._counter.to_bytes(12, "big")
        try:
            plain = self._aead.decrypt(nonce, sealed, header)
        except InvalidTag:
            raise FrameRejected(
                "frame failed authentication (forged, replayed or reordered)"
            ) from None
        self._counter += 1
        if plain[:1] == _ZLIB:
            inflater = zlib.decompressobj()
            try:
                body = inflater.decompress(plain[1:], MAX_MESSAGE)
            except zlib.error as exc:
                raise FrameRejected(f"frame does not decompress: {exc}") from None
            if inflater.unconsumed_tail or not inflater.eof:
                raise FrameRejected(f"frame expands beyond {MAX_MESSAGE} bytes")
        else:
            body = plain[1:]
        # Authenticated above: only a holder of an accepted cluster secret made these bytes.
        return pickle.loads(body)
