"""Proof of the cluster secret between two Raft peers, and the sealed frames that follow.

The handshake (fixed sizes, so nothing is parsed before the peer has proved the secret):

1. initiator -> acceptor: ``HKRAFT`` + the versions it offers (2 bytes) + initiator nonce
   (32 random bytes)
2. acceptor -> initiator: ``HKRAFT`` + the version it chose (2 bytes) + acceptor nonce +
   HMAC(acceptor's current secret, "acceptor" label + [both version headers] + both nonces)
3. initiator -> acceptor: HMAC(initiator's current secret, "initiator" label + [both version
   headers] + both nonces)

Versions (`hakeeper.model.wire_version`, `Format.RAFT_PEER_WIRE`): the two version bytes are
``newest, oldest`` of the initiator's range, and ``v, v`` for the acceptor's choice, the
highest version both speak. Version 1 is the handshake of the releases before versions: its
header is ``\x01\x00`` both ways and its proofs cover the nonces only, so a node of this
release and one of an older release still agree (on 1). From version 2 on, the proofs and the
frame keys also cover both version headers, so a man in the middle who rewrites the offer to
force an older version makes the proofs fail. An acceptor that shares no version with the
offer answers ``HKRAFT\x00\x00`` + its own range instead of a proof, so the initiator can say
which side to upgrade, and closes.

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

from hakeeper.errors import VersionMismatch
from hakeeper.model.wire_version import Format, VersionRange, negotiate

PREFIX = b"HKRAFT"
MAGIC = PREFIX + b"\x01\x00"
"""The version header of version 1, both ways: what every release before versions sent."""
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
_BOUND_ACCEPTOR_LABEL = b"hakeeper raft acceptor proof v2+"
_BOUND_INITIATOR_LABEL = b"hakeeper raft initiator proof v2+"
_REFUSED = b"\x00\x00"
LEGACY = VersionRange(1, 1)


class HandshakeFailed(Exception):
    """The peer did not prove a secret this side accepts, or spoke another protocol."""


class VersionRefused(HandshakeFailed):
    """The acceptor shares no peer-wire version with this node; the message names both."""


class FrameRejected(Exception):
    """A frame failed to open: too large, forged, replayed, reordered or undecodable."""


def new_nonce() -> bytes:
    return os.urandom(NONCE_BYTES)


def _header(versions: VersionRange) -> bytes:
    if versions == LEGACY:
        return MAGIC
    return PREFIX + bytes((versions.newest, versions.oldest))


def _versions(header: bytes) -> VersionRange | None:
    """The range a version header names (``\x01\x00`` is version 1); None if malformed."""
    if header == MAGIC:
        return LEGACY
    if not hmac.compare_digest(header[: len(PREFIX)], PREFIX):
        return None
    newest, oldest = header[len(PREFIX)], header[len(PREFIX) + 1]
    return VersionRange(oldest, newest) if 1 <= oldest <= newest else None


@dataclass(frozen=True, slots=True)
class Offer:
    """A parsed hello: the initiator's nonce, the versions it offers, and their header."""

    nonce: bytes
    versions: VersionRange
    header: bytes


@dataclass(frozen=True, slots=True)
class Agreement:
    """The version a connection speaks, and the two headers that agreed on it (which the
    proofs and keys of version 2 and later cover)."""

    version: int
    offered: bytes = MAGIC
    chosen: bytes = MAGIC

    def bound(self) -> bytes:
        return b"" if self.version == 1 else self.offered + self.chosen


V1 = Agreement(1)
"""The agreement of two nodes that speak version 1 only (what older releases speak)."""


def hello(initiator_nonce: bytes, offer: VersionRange = LEGACY) -> bytes:
    return _header(offer) + initiator_nonce


def parse_hello(data: bytes) -> Offer:
    """The initiator's nonce and offer; HandshakeFailed for anything but a hakeeper hello."""
    header = data[: len(MAGIC)]
    versions = _versions(header) if len(data) == HELLO_BYTES else None
    if versions is None:
        raise HandshakeFailed("not a hakeeper raft hello (another protocol)")
    return Offer(data[len(MAGIC) :], versions, header)


def choose(mine: VersionRange, offer: Offer) -> Agreement:
    """The highest version both speak; VersionMismatch (naming both ranges) when none."""
    version = negotiate(Format.RAFT_PEER_WIRE, mine, offer.versions)
    chosen = MAGIC if version == 1 else PREFIX + bytes((version, version))
    return Agreement(version, offer.header, chosen)


def refusal(mine: VersionRange) -> bytes:
    """The acceptor's answer to an offer it shares no version with: its own range."""
    pad = REPLY_BYTES - len(PREFIX) - len(_REFUSED) - 2
    return PREFIX + _REFUSED + bytes((mine.newest, mine.oldest)) + b"\x00" * pad


def _proof(
    secret: bytes, label: bytes, agreement: Agreement, initiator_nonce: bytes, acceptor_nonce: bytes
) -> bytes:
    if agreement.version > 1:
        label = _BOUND_ACCEPTOR_LABEL if label == _ACCEPTOR_LABEL else _BOUND_INITIATOR_LABEL
    message = label + agreement.bound() + initiator_nonce + acceptor_nonce
    return hmac.new(secret, message, hashlib.sha256).digest()


def _match(
    proof: bytes,
    accepted: Sequence[bytes],
    label: bytes,
    agreement: Agreement,
    n_i: bytes,
    n_a: bytes,
) -> bytes:
    """The accepted secret ``proof`` was made with; every secret is tried (constant work)."""
    found: bytes | None = None
    for secret in accepted:
        if hmac.compare_digest(proof, _proof(secret, label, agreement, n_i, n_a)):
            found = secret
    if found is None:
        raise HandshakeFailed("the peer's proof matches no accepted cluster secret")
    return found


def reply(
    current: bytes, initiator_nonce: bytes, acceptor_nonce: bytes, agreement: Agreement = V1
) -> bytes:
    proof = _proof(current, _ACCEPTOR_LABEL, agreement, initiator_nonce, acceptor_nonce)
    return agreement.chosen + acceptor_nonce + proof


def check_reply(
    data: bytes,
    accepted: Sequence[bytes],
    initiator_nonce: bytes,
    offered: VersionRange = LEGACY,
) -> tuple[bytes, bytes, Agreement]:
    """(acceptor nonce, the secret the acceptor proved, the agreed version) from its reply;
    VersionRefused when the acceptor shares no version, else HandshakeFailed."""
    header = data[: len(MAGIC)]
    if len(data) == REPLY_BYTES and header == PREFIX + _REFUSED:
        theirs = _versions(PREFIX + data[len(MAGIC) : len(MAGIC) + 2])
        if theirs is None:
            raise VersionRefused(
                f"the peer refused this node's {Format.RAFT_PEER_WIRE} versions {offered} "
                "and named none of its own"
            )
        raise VersionRefused(_mismatch(offered, theirs))
    chosen = _versions(header) if len(data) == REPLY_BYTES else None
    if chosen is None or chosen.oldest != chosen.newest or chosen.newest not in offered:
        raise HandshakeFailed("not a hakeeper raft reply to this offer (another protocol)")
    agreement = Agreement(chosen.newest, _header(offered), header)
    acceptor_nonce = data[len(MAGIC) : len(MAGIC) + NONCE_BYTES]
    proof = data[len(MAGIC) + NONCE_BYTES :]
    secret = _match(proof, accepted, _ACCEPTOR_LABEL, agreement, initiator_nonce, acceptor_nonce)
    return acceptor_nonce, secret, agreement


def _mismatch(mine: VersionRange, theirs: VersionRange) -> str:
    try:
        negotiate(Format.RAFT_PEER_WIRE, mine, theirs)
    except VersionMismatch as exc:
        return str(exc)
    return f"the peer refused {Format.RAFT_PEER_WIRE} versions {mine} though it speaks {theirs}"


def finish(
    current: bytes, initiator_nonce: bytes, acceptor_nonce: bytes, agreement: Agreement = V1
) -> bytes:
    return _proof(current, _INITIATOR_LABEL, agreement, initiator_nonce, acceptor_nonce)


def check_finish(
    data: bytes,
    accepted: Sequence[bytes],
    initiator_nonce: bytes,
    acceptor_nonce: bytes,
    agreement: Agreement = V1,
) -> bytes:
    """The secret the initiator proved with, or HandshakeFailed."""
    return _match(data, accepted, _INITIATOR_LABEL, agreement, initiator_nonce, acceptor_nonce)


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """Both directions' keys of one connection, as the initiator names them."""

    initiator_to_acceptor: bytes
    acceptor_to_initiator: bytes


def session_keys(
    acceptor_secret: bytes,
    initiator_secret: bytes,
    initiator_nonce: bytes,
    acceptor_nonce: bytes,
    agreement: Agreement = V1,
) -> SessionKeys:
    """Keys bound to both proved secrets and both nonces (and, from version 2, both version
    headers): fresh for every connection."""
    info = (
        b"hakeeper raft frame keys v1"
        if agreement.version == 1
        else b"hakeeper raft frame keys v2+" + agreement.bound()
    )
    material = HKDF(
        algorithm=hashes.SHA256(),
        length=64,
        salt=initiator_nonce + acceptor_nonce,
        info=info,
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
