"""Objects encrypted in bounded chunks, each sealed with AES-256-GCM.

An encrypted object is a sequence of frames, one per chunk of at most ``chunk_size`` bytes::

    flags (1 byte: 1 on the last frame) · length (4 bytes, big-endian) · nonce (12 bytes)
    · ciphertext and tag (length bytes)

Each chunk's associated data binds it to its place: the backup id, the object name, the
chunk's index and its flags. So a chunk moved within an object, taken from another object
or another backup, or marked last early fails its tag; a stream cut after any frame but the
one flagged last is truncated; bytes after that frame are refused. An empty object is one
empty frame flagged last. Memory stays bounded by one chunk whatever the object's size.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import AsyncIterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hakeeper.backup.errors import CorruptObject, TruncatedObject

DEFAULT_CHUNK_SIZE = 1024 * 1024
TAG_BYTES = 16
_NONCE_BYTES = 12
_FRAME = struct.Struct(">BI12s")
_LAST = 1


def _associated(backup_id: str, name: str, index: int, flags: int) -> bytes:
    return b"".join(
        (
            b"hakeeper backup chunk\x00",
            backup_id.encode(),
            b"\x00",
            name.encode(),
            b"\x00",
            index.to_bytes(8, "big"),
            bytes((flags,)),
        )
    )


async def rechunk(source: AsyncIterator[bytes], size: int) -> AsyncIterator[bytes]:
    """The bytes of ``source`` in pieces of exactly ``size`` bytes, the last one shorter
    (and none at all for an empty source)."""
    pending = bytearray()
    async for piece in source:
        pending += piece
        while len(pending) >= size:
            yield bytes(pending[:size])
            del pending[:size]
    if pending:
        yield bytes(pending)


async def seal(
    plain: AsyncIterator[bytes], aead: AESGCM, backup_id: str, name: str, chunk_size: int
) -> AsyncIterator[bytes]:
    """The frames of ``plain``; the last frame is known only when ``plain`` ends, so each
    chunk waits for the next one before it is sealed."""
    index = 0
    held: bytes | None = None
    async for chunk in rechunk(plain, chunk_size):
        if held is not None:
            yield _frame(aead, backup_id, name, index, 0, held)
            index += 1
        held = chunk
    yield _frame(aead, backup_id, name, index, _LAST, held or b"")


def _frame(aead: AESGCM, backup_id: str, name: str, index: int, flags: int, data: bytes) -> bytes:
    nonce = secrets.token_bytes(_NONCE_BYTES)
    sealed = aead.encrypt(nonce, data, _associated(backup_id, name, index, flags))
    return _FRAME.pack(flags, len(sealed), nonce) + sealed


async def unseal(
    stored: AsyncIterator[bytes], aead: AESGCM, backup_id: str, name: str, chunk_size: int
) -> AsyncIterator[bytes]:
    """The plaintext chunks of the frames in ``stored``, each checked before it is given
    out; `CorruptObject` or `TruncatedObject` naming the object and the chunk."""
    where = f"backup {backup_id}, object {name!r}"
    buffer = bytearray()
    index = 0
    done = False
    async for piece in stored:
        buffer += piece
        while not done and len(buffer) >= _FRAME.size:
            flags, length, nonce = _FRAME.unpack_from(buffer)
            if flags & ~_LAST or length > chunk_size + TAG_BYTES or length < TAG_BYTES:
                raise CorruptObject(f"{where}: chunk {index} has a damaged frame header")
            end = _FRAME.size + length
            if len(buffer) < end:
                break
            try:
                plain = aead.decrypt(
                    nonce,
                    bytes(buffer[_FRAME.size : end]),
                    _associated(backup_id, name, index, flags),
                )
            except InvalidTag:
                raise CorruptObject(
                    f"{where}: chunk {index} fails its authentication (changed, moved, or "
                    "taken from another object; use another backup)"
                ) from None
            del buffer[:end]
            index += 1
            done = bool(flags & _LAST)
            yield plain
        if done and buffer:
            raise CorruptObject(f"{where}: bytes follow the last chunk")
    if not done:
        raise TruncatedObject(
            f"{where}: ends after {index} chunks without the last one (cut short; use "
            "another backup)"
        )
