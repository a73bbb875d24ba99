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

from hakeeper.sessions.store import Store

HEADER = struct.Struct(">BHIdQI")
OP_NOOP = 0
OP_PUT = 1
OP_DELETE = 2
OP_FLUSH = 3
NOOP_ENTRY = HEADER.pack(OP_NOOP, 0, 0, 0.0, 0, 0)


#: A decoded entry: (op, key, flags, exptime, cas, value), the store's install order.
Entry = tuple[int, bytes, int, float, int, bytes]


class CorruptEntry(ValueError):
    """A batch or snapshot payload does not decode into whole entries."""


def encode_put(key: bytes, value: bytes, flags: int, exptime: float, cas: int) -> bytes:
    return HEADER.pack(OP_PUT, len(key), flags, exptime, cas, len(value)) + key + value


def encode_delete(key: bytes) -> bytes:
    return HEADER.pack(OP_DELETE, len(key), 0, 0.0, 0, 0) + key


def encode_flush(flush_at: float) -> bytes:
    return HEADER.pack(OP_FLUSH, 0, 0, flush_at, 0, 0)


def decode(payload: bytes) -> list[Entry]:
    """Every entry of a payload, all decoded before any is used: a corrupt payload raises
    `CorruptEntry` whole."""
    unpack = HEADER.unpack_from
    header = HEADER.size
    size = len(payload)
    decoded: list[Entry] = []
    add = decoded.append
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
        pos = end
    return decoded


def decode_prefix(payload: bytes) -> tuple[list[Entry], int]:
    """The whole entries at the start of ``payload`` and the bytes they take.

    For a stream cut anywhere (a snapshot arriving in pieces): a partial last entry is left
    for the next piece, an unknown op raises `CorruptEntry`.
    """
    unpack = HEADER.unpack_from
    header = HEADER.size
    size = len(payload)
    decoded: list[Entry] = []
    add = decoded.append
    pos = 0
    while size - pos >= header:
        op, klen, flags, exptime, cas, vlen = unpack(payload, pos)
        if op > OP_FLUSH:
            raise CorruptEntry(f"entry at byte {pos} has op {op}")
        start = pos + header
        split = start + klen
        end = split + vlen
        if end > size:
            break
        add((op, payload[start:split], flags, exptime, cas, payload[split:end]))
        pos = end
    return decoded, pos


def apply_all(store: Store, payload: bytes, expected: int | None = None) -> int:
    """Apply every entry of a payload in order (the replica's hot path); returns the count.

    The payload is decoded completely before anything is applied, so a corrupt one (or one
    with other than ``expected`` entries) raises `CorruptEntry` and changes nothing.
    """
    decoded = decode(payload)
    if expected is not None and len(decoded) != expected:
        raise CorruptEntry(f"batch holds {len(decoded)} entries, its header says {expected}")
    if all(entry[0] == OP_PUT for entry in decoded):
        # The stream's usual batch: sets only, installed in one loop inside the store.
        store.install_puts(decoded)
        return len(decoded)
    for entry in decoded:
        op = entry[0]
        if op == OP_PUT:
            store.install_puts((entry,))
        elif op == OP_DELETE:
            store.remove(entry[1])
        elif op == OP_FLUSH:
            store.set_flush_at(entry[3])
    return len(decoded)
