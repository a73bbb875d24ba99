"""A session store's consistent snapshot and its reload into a fresh store (pure: no I/O).

**Snapshot.** The primary freezes its items at one replication position (epoch, seq):
`FrozenView` holds a copy of the store's dict (`Store.frozen_items`), taken in one
event-loop step, whose records are the store's immutable tuples, so no write after the
freeze reaches it and it costs a dict entry per item, not the items. Its key count is the
records it holds (expired ones travel with their absolute expiry and stay hidden). It is
then read in bounded chunks of replication entries (`entries.encode_put`, the stream's own
format) over as many requests as it takes; writes go on meanwhile. The bytes a backup
keeps are a `SnapshotHeader` line, then the chunks:

    hakeeper-sessions-snapshot 1 <epoch> <seq> <keys>\\n
    <PUT entry> ... [<FLUSH entry> when a delayed flush_all is still to come]

**Reseed.** `SeedLoad` rebuilds a store from such entries, fed in pieces cut anywhere (a
piece may end inside an entry: the rest waits for the next piece, up to one entry's bound).
Everything is built aside and handed over only when the whole snapshot arrived, its key
count matched and nothing was evicted, so a corrupt, truncated or oversized snapshot changes
nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from hakeeper.sessions import entries
from hakeeper.sessions.entries import OP_FLUSH, OP_PUT, CorruptEntry
from hakeeper.sessions.store import Record, Store
from hakeeper.sessions.wire import KEY_MAX_LENGTH

FORMAT = b"hakeeper-sessions-snapshot"
FORMAT_VERSION = 1
# The longest header line a reader accepts (five tokens of at most 26 and 20 digits).
HEADER_MAX = 128
# What one chunk of a snapshot or a seed holds at most (a chunk always holds at least one
# whole entry, up to the item size limit plus its header).
MAX_CHUNK = 4 << 20
DEFAULT_CHUNK = 1 << 20
# An open snapshot or seed nobody read or fed for this long is dropped (its memory freed).
IDLE_TIMEOUT = 60.0
ENTRY_HEADER = entries.HEADER.size


class SnapshotFormatError(ValueError):
    """Bytes that are not a session-store snapshot this version can read."""


@dataclass(frozen=True, slots=True)
class SnapshotHeader:
    """The first line of a snapshot's bytes: where it was taken and how many keys it holds."""

    epoch: int
    seq: int
    keys: int

    def encode(self) -> bytes:
        return b"%s %d %d %d %d\n" % (FORMAT, FORMAT_VERSION, self.epoch, self.seq, self.keys)

    @classmethod
    def parse(cls, line: bytes) -> SnapshotHeader:
        parts = line.rstrip(b"\n").split(b" ")
        if len(parts) != 5 or parts[0] != FORMAT:
            raise SnapshotFormatError(
                f"not a session-store snapshot (header {line[:60]!r}); was this object "
                "written by `hakeeper backup` for a session store?"
            )
        if not all(part.isdigit() and len(part) <= 20 for part in parts[1:]):
            raise SnapshotFormatError(f"bad session-store snapshot header {line[:60]!r}")
        version, epoch, seq, keys = (int(part) for part in parts[1:])
        if version > FORMAT_VERSION:
            raise SnapshotFormatError(
                f"session-store snapshot format {version} is newer than this hakeeper reads "
                f"({FORMAT_VERSION}); restore it with a newer hakeeper"
            )
        return cls(epoch, seq, keys)


class FrozenView:
    """The items of a store at one (epoch, seq), read chunk by chunk."""

    __slots__ = ("_flush_at", "_items", "epoch", "keys", "last_used", "seq", "token")

    def __init__(self, store: Store, epoch: int, seq: int, token: int, now: float) -> None:
        self.token = token
        self.epoch = epoch
        self.seq = seq
        frozen = store.frozen_items()
        self.keys = len(frozen)
        self._items: Iterator[tuple[bytes, Record]] | None = iter(frozen.items())
        # A delayed flush_all still to come travels with the items; one that has passed
        # already left its items out of the copy.
        flush_at = store.flush_at
        self._flush_at = flush_at if flush_at > store.clock() else 0.0
        self.last_used = now

    @property
    def done(self) -> bool:
        return self._items is None

    def next_chunk(self, limit: int, now: float) -> tuple[bytes, bool]:
        """The next entries, about ``limit`` bytes (at least one entry), and whether more
        follow. The last chunk ends with the pending delayed flush, if one was pending."""
        self.last_used = now
        items = self._items
        if items is None:
            return b"", False
        # PUT entries written out (`entries.encode_put`'s layout): header, key and value go
        # into the join as three parts, with no concatenation per item (~3x faster).
        parts: list[bytes] = []
        add = parts.extend
        pack = entries.HEADER.pack
        size = 0
        for key, record in items:
            value = record[0]
            add((pack(OP_PUT, len(key), record[1], record[2], record[3], len(value)), key, value))
            size += ENTRY_HEADER + len(key) + len(value)
            if size >= limit:
                return b"".join(parts), True
        self._items = None
        if self._flush_at:
            parts.append(entries.encode_flush(self._flush_at))
        return b"".join(parts), False


def whole_store(store: Store) -> bytes:
    """The store as one snapshot payload (a replica's catch-up, ``hk_dump``)."""
    payload, _ = FrozenView(store, 0, 0, 0, 0.0).next_chunk(1 << 62, 0.0)
    return payload


class SeedLoad:
    """A fresh store being filled from a snapshot's entries, handed over only when whole."""

    __slots__ = ("_max_entry", "_tail", "last_used", "puts", "source_epoch", "store", "token")

    def __init__(self, fresh: Store, token: int, source_epoch: int, now: float) -> None:
        self.store = fresh
        self.token = token
        self.source_epoch = source_epoch
        self.puts = 0
        self.last_used = now
        self._tail = b""
        # A partial entry never needs more than a header, a key and the largest value.
        self._max_entry = entries.HEADER.size + KEY_MAX_LENGTH + fresh.item_size_max

    def feed(self, piece: bytes, now: float) -> int:
        """Decode and install the whole entries in what arrived so far; the PUTs so far.

        `CorruptEntry` for an entry a snapshot never holds (delete, noop, a bad key) or a
        partial entry longer than any item can be; the load is then to be dropped.
        """
        self.last_used = now
        data = self._tail + piece if self._tail else piece
        decoded, used = entries.decode_prefix(data)
        self._tail = data[used:]
        if len(self._tail) > self._max_entry:
            raise CorruptEntry(
                f"a snapshot entry longer than {self._max_entry} bytes: not a snapshot of a "
                "store with this item size limit"
            )
        puts = []
        for entry in decoded:
            op, key = entry[0], entry[1]
            if op == OP_PUT and 0 < len(key) <= KEY_MAX_LENGTH:
                puts.append(entry)
            elif op == OP_FLUSH:
                self.store.set_flush_at(entry[3])
            else:
                raise CorruptEntry(f"a snapshot holds only sets and a flush, not op {op}")
        if puts:
            self.store.install_puts(puts)
        self.puts += len(puts)
        return self.puts

    def finish(self, keys: int) -> Store:
        """The rebuilt store, if it holds the ``keys`` items the snapshot announced."""
        if self._tail:
            raise CorruptEntry(f"the snapshot ends inside an entry ({len(self._tail)} bytes)")
        stats = self.store.stats()
        if stats.evictions:
            raise CorruptEntry(
                f"the snapshot does not fit in this store's memory bound ({stats.limit_maxbytes}"
                " bytes): start the store with a larger --memory"
            )
        if self.puts != keys or stats.curr_items != keys:
            raise CorruptEntry(
                f"the snapshot announced {keys} keys but holds {self.puts} "
                f"({stats.curr_items} distinct): it is truncated or not this snapshot"
            )
        return self.store
