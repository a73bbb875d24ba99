"""Replication entries and their binary encoding (pure).

The primary ships the state an operation produced, not the operation: ``PUT`` carries the
whole item with its absolute expiry and CAS unique, so applying an entry twice or on a
replica with another clock gives the same item. ``NOOP`` entries exist only to be
acknowledged: a read on the primary waits for one issued after it arrived (a read barrier).

Entry layout (big endian): op u8, key length u16, flags u32, exptime f64 (absolute Unix
time, 0 = never; for FLUSH the flush time), cas u64, value length u32, key, value.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from hakeeper.sessions.store import Store

HEADER = struct.Struct(">BHIdQI")
OP_NOOP = 0
OP_PUT = 1
OP_DELETE = 2
OP_FLUSH = 3
NOOP_ENTRY = HEADER.pack(OP_NOOP, 0, 0, 0.0, 0, 0)


@dataclass(frozen=True, slots=True)
class Entry:
    op: int
    key: bytes
    flags: int
    exptime: float
    cas: int
    value: bytes


class CorruptEntry(ValueError):
    """A batch or snapshot payload does not decode into whole entries."""


def encode_put(key: bytes, value: bytes, flags: int, exptime: float, cas: int) -> bytes:
    return HEADER.pack(OP_PUT, len(key), flags, exptime, cas, len(value)) + key + value


def encode_delete(key: bytes) -> bytes:
    return HEADER.pack(OP_DELETE, len(key), 0, 0.0, 0, 0) + key


def encode_flush(flush_at: float) -> bytes:
    return HEADER.pack(OP_FLUSH, 0, 0, flush_at, 0, 0)


def decode(payload: bytes) -> Iterator[Entry]:
    view = memoryview(payload)
    pos = 0
    size = len(payload)
    while pos < size:
        if size - pos < HEADER.size:
            raise CorruptEntry(f"truncated entry header at byte {pos}")
        op, klen, flags, exptime, cas, vlen = HEADER.unpack_from(view, pos)
        pos += HEADER.size
        if pos + klen + vlen > size or op > OP_FLUSH:
            raise CorruptEntry(f"entry at byte {pos} overruns the payload or has op {op}")
        key = bytes(view[pos : pos + klen])
        pos += klen
        value = bytes(view[pos : pos + vlen])
        pos += vlen
        yield Entry(op, key, flags, exptime, cas, value)


def apply_all(store: Store, payload: bytes, expected: int | None = None) -> int:
    """Apply every entry of a payload in order (the replica's hot path); returns the count.

    The payload is decoded completely before anything is applied, so a corrupt one (or one
    with other than ``expected`` entries) raises `CorruptEntry` and changes nothing.
    """
    unpack = HEADER.unpack_from
    header = HEADER.size
    size = len(payload)
    decoded: list[tuple[int, bytes, int, float, int, bytes]] = []
    add = decoded.append
    only_puts = True
    pos = 0
    while pos < size:
        if size - pos < header:
            raise CorruptEntry(f"truncated entry header at byte {pos}")
        op, klen, flags, exptime, cas, vlen = unpack(payload, pos)
        pos += header
        split = pos + klen
        end = split + vlen
        if end > size or op > OP_FLUSH:
            raise CorruptEntry(f"entry at byte {pos} overruns the payload or has op {op}")
        add((op, payload[pos:split], flags, exptime, cas, payload[split:end]))
        if op != OP_PUT:
            only_puts = False
        pos = end
    if expected is not None and len(decoded) != expected:
        raise CorruptEntry(f"batch holds {len(decoded)} entries, its header says {expected}")
    if only_puts:
        # The stream's usual batch: sets only, installed in one loop inside the store.
        store.install_puts(decoded)
        return len(decoded)
    install = store.install
    for op, key, flags, exptime, cas, value in decoded:
        if op == OP_PUT:
            install(key, value, flags, exptime, cas)
        elif op == OP_DELETE:
            store.remove(key)
        elif op == OP_FLUSH:
            store.set_flush_at(exptime)
    return len(decoded)


def snapshot(store: Store) -> bytes:
    """Every live item as PUT entries, then the pending delayed flush if any."""
    parts = [
        encode_put(key, item.value, item.flags, item.exptime, item.cas)
        for key, item in store.items()
    ]
    if store.flush_at:
        parts.append(encode_flush(store.flush_at))
    return b"".join(parts)
