from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hakeeper.backup.chunks import TAG_BYTES, rechunk, seal, unseal
from hakeeper.backup.errors import CorruptObject, TruncatedObject

BACKUP = "20261206T100000Z-00000001"
CHUNK = 1024
FRAME = 17 + CHUNK + TAG_BYTES  # header + full chunk + tag
AEAD = AESGCM(b"\x07" * 32)


async def stream(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in chunks])


async def sealed(data: bytes, name: str = "obj") -> bytes:
    return await collect(seal(stream(data), AEAD, BACKUP, name, CHUNK))


async def opened(data: bytes, name: str = "obj") -> bytes:
    return await collect(unseal(stream(data), AEAD, BACKUP, name, CHUNK))


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5])
async def test_sealed_chunks_open_to_the_same_bytes(size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    assert await opened(await sealed(data)) == data


async def test_stored_bytes_arriving_in_odd_pieces_still_open() -> None:
    data = b"z" * (2 * CHUNK + 7)
    frames = await sealed(data)
    pieces = [frames[i : i + 13] for i in range(0, len(frames), 13)]
    assert await collect(unseal(stream(*pieces), AEAD, BACKUP, "obj", CHUNK)) == data


async def test_rechunk_gives_full_pieces_and_a_short_last_one() -> None:
    pieces = [p async for p in rechunk(stream(b"ab", b"cdefg", b"h"), 3)]
    assert pieces == [b"abc", b"def", b"gh"]


async def test_two_chunks_swapped_are_refused() -> None:
    frames = await sealed(b"a" * CHUNK + b"b" * CHUNK + b"c")
    swapped = frames[FRAME : 2 * FRAME] + frames[:FRAME] + frames[2 * FRAME :]
    with pytest.raises(CorruptObject, match="chunk 0 fails its authentication"):
        await opened(swapped)


async def test_a_chunk_of_another_object_is_refused() -> None:
    theirs = await sealed(b"x" * 10, name="other")
    with pytest.raises(CorruptObject, match="fails its authentication"):
        await opened(theirs, name="obj")


async def test_a_stream_cut_after_a_whole_chunk_is_truncated() -> None:
    frames = await sealed(b"a" * (2 * CHUNK + 1))
    with pytest.raises(TruncatedObject, match="without the last one"):
        await opened(frames[:FRAME])


async def test_a_stream_cut_inside_a_chunk_is_truncated() -> None:
    frames = await sealed(b"a" * 100)
    with pytest.raises(TruncatedObject):
        await opened(frames[:-1])


async def test_a_middle_chunk_marked_last_is_refused() -> None:
    frames = bytearray(await sealed(b"a" * (2 * CHUNK)))
    frames[0] |= 1
    with pytest.raises(CorruptObject, match="chunk 0"):
        await opened(bytes(frames[:FRAME]))


async def test_bytes_after_the_last_chunk_are_refused() -> None:
    frames = await sealed(b"a" * 10)
    with pytest.raises(CorruptObject, match="follow the last chunk"):
        await opened(frames + b"\x00")


async def test_an_oversized_frame_length_is_refused_before_buffering_it() -> None:
    frames = bytearray(await sealed(b"a" * 10))
    frames[1:5] = (CHUNK * 100).to_bytes(4, "big")
    with pytest.raises(CorruptObject, match="damaged frame header"):
        await opened(bytes(frames))
