"""The item store behind the memcached protocol: pure, no I/O, clock injected.

Semantics follow memcached 1.6: an ``exptime`` up to 30 days (2,592,000 s) is relative to now,
a larger one is an absolute Unix time, a negative one means already expired, 0 means never.
Items expire lazily on access. Memory is bounded by what items cost this process: key +
value + `ITEM_COST` (the CPython objects around them, measured: ~300 bytes per item), so
the process's resident memory follows ``memory_limit``; a store that would exceed the bound
evicts items not used recently first. The item size limit keeps memcached's rule (key +
value + its 48-byte header, `ITEM_OVERHEAD`), so the same items fit as in memcached.

Eviction is second-chance (CLOCK), like memcached's segmented LRU rather than a strict LRU
list: keys wait in a FIFO queue in insertion order; a read or an overwrite only marks the
item used (nothing moves); when the bound is exceeded, the oldest key in the queue is evicted
unless it is marked, in which case it is unmarked and queued again. A read of an item already
marked costs nothing beyond the lookup, where an ordered dict's move-to-end on every read and
write cost ~25% of a pipelined set. Deleted keys stay in the queue until they reach its head or
the queue is rebuilt (when it holds twice as many keys as the store, plus 1024).

Every write method returns an `Outcome`; the replication layer reads the resulting item back
with `peek` and ships the state, not the command, so replicas never re-run incr or append.

Items are kept as plain tuples (`Record`: the fields of `Item` in its order, then the used
mark): building one costs a fraction of a class instance, and `set`/`lookup` are the
protocol's hot path. The public reads (`get`, `peek`, `items`) hand out `Item` named tuples.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

MAX_RELATIVE_EXPTIME = 60 * 60 * 24 * 30
ITEM_OVERHEAD = 48
# What one item costs beyond its key and value bytes, measured on CPython 3.11 (64-bit) by
# filling a store with 200,000 items of 10 B to 5 kB: ~285-300 bytes (two bytes objects'
# headers, the record tuple, the CAS int and expiry float, the dict entry and its share of
# the table's free slots, the eviction queue's pointer). Rounded up for dict growth steps.
ITEM_COST = 320
# What ITEM_COST adds to the size memcached's rule gives an item (key + value + 48).
EXTRA_COST = ITEM_COST - ITEM_OVERHEAD
DEFAULT_ITEM_SIZE_MAX = 1024 * 1024
DEFAULT_MEMORY_LIMIT = 64 * 1024 * 1024
U64 = (1 << 64) - 1

Clock = Callable[[], float]


class Outcome(enum.Enum):
    STORED = b"STORED\r\n"
    NOT_STORED = b"NOT_STORED\r\n"
    EXISTS = b"EXISTS\r\n"
    NOT_FOUND = b"NOT_FOUND\r\n"
    DELETED = b"DELETED\r\n"
    TOUCHED = b"TOUCHED\r\n"
    NON_NUMERIC = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
    TOO_LARGE = b"SERVER_ERROR object too large for cache\r\n"
    OUT_OF_MEMORY = b"SERVER_ERROR out of memory storing object\r\n"


STORED = Outcome.STORED


class Item(NamedTuple):
    """One stored value as the store's readers see it."""

    value: bytes
    flags: int
    exptime: float  # absolute Unix time; 0 = never expires
    cas: int
    mtime: float  # write time, kept only while a delayed flush_all is pending


# (value, flags, exptime, cas, mtime, used): Item's fields and the eviction mark.
Record = tuple[bytes, int, float, int, float, bool]
QUEUE_SLACK = 1024


@dataclass(frozen=True, slots=True)
class StoreStats:
    curr_items: int
    bytes: int
    limit_maxbytes: int
    total_items: int
    evictions: int
    expired_unfetched: int


def absolute_exptime(exptime: int, now: float) -> float:
    """memcached's rule: 0 never, negative already past, ≤30 days relative, else absolute."""
    if exptime == 0:
        return 0.0
    if exptime < 0:
        return -1.0
    if exptime <= MAX_RELATIVE_EXPTIME:
        return now + exptime
    return float(exptime)


def parse_counter(value: bytes) -> int | None:
    """The number an incr/decr may work on (strtoull with memcached's checks), or None."""
    text = value.strip(b" \t\r\n\v\f")
    if text.startswith(b"+"):
        text = text[1:]
    if not text or not text.isdigit() or len(text) > 20:
        return None
    number = int(text)
    return number if number <= U64 else None


def item_size(key: bytes, value: bytes) -> int:
    """What an item counts against the memory bound."""
    return len(key) + len(value) + ITEM_COST


def _item(record: Record) -> Item:
    return Item(record[0], record[1], record[2], record[3], record[4])


class Store:
    """Items by key, bounded by ``memory_limit`` bytes (second-chance eviction)."""

    __slots__ = (
        "_bytes",
        "_cas",
        "_cas_skipped",
        "_evictions",
        "_expired",
        "_flush_at",
        "_installed",
        "_items",
        "_queue",
        "_queue_bound",
        "_size_bound",
        "clock",
        "item_size_max",
        "memory_limit",
    )

    def __init__(
        self,
        *,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        item_size_max: int = DEFAULT_ITEM_SIZE_MAX,
        clock: Clock = time.time,
    ) -> None:
        self.memory_limit = memory_limit
        self.item_size_max = item_size_max
        self._size_bound = min(memory_limit, item_size_max)
        self.clock = clock
        self._items: dict[bytes, Record] = {}
        # Eviction order; every stored key is in it at least once.
        self._queue: deque[bytes] = deque()
        self._queue_bound = QUEUE_SLACK
        self._bytes = 0
        self._cas = 0
        self._flush_at = 0.0
        # total_items = CAS uniques issued here + items installed from the stream (one
        # counter fewer to bump on the hot path).
        self._installed = 0
        self._cas_skipped = 0
        self._evictions = 0
        self._expired = 0

    # --- reads -------------------------------------------------------------------------------

    def lookup(self, key: bytes) -> Record | None:
        """The live record under ``key`` (and mark it recently used), or None."""
        items = self._items
        record = items.get(key)
        if record is None:
            return None
        exptime = record[2]
        if (exptime and exptime <= self.clock()) or (self._flush_at and self._flushed(record)):
            self._drop(key, record)
            self._expired += 1
            return None
        if not record[5]:
            record = items[key] = (record[0], record[1], exptime, record[3], record[4], True)
        return record

    def get(self, key: bytes) -> Item | None:
        """The live item under ``key`` (and mark it recently used), or None."""
        record = self.lookup(key)
        return None if record is None else _item(record)

    def peek(self, key: bytes) -> Item | None:
        """The item as stored, expired or not, without touching LRU order."""
        record = self._items.get(key)
        return None if record is None else _item(record)

    def peek_record(self, key: bytes) -> Record | None:
        """The record as stored, expired or not, without marking it used (replication)."""
        return self._items.get(key)

    def touch(self, key: bytes, exptime: int) -> Outcome:
        record = self.lookup(key)
        if record is None:
            return Outcome.NOT_FOUND
        value, flags, _, cas, mtime, _ = record
        absolute = absolute_exptime(exptime, self.clock())
        self._items[key] = (value, flags, absolute, cas, mtime, True)
        return Outcome.TOUCHED

    # --- writes ------------------------------------------------------------------------------

    def set(self, key: bytes, value: bytes, flags: int, exptime: int) -> Outcome:
        # The protocol's hot path, written out in full: on this kind of machine a method call
        # or an attribute round trip costs as much as the dictionary work itself.
        size = len(key) + len(value) + ITEM_OVERHEAD
        if size > self._size_bound:
            return Outcome.TOO_LARGE if size > self.item_size_max else Outcome.OUT_OF_MEMORY
        items = self._items
        old = items.get(key)
        cas = self._cas = self._cas + 1
        # mtime only matters for a delayed flush_all; skip the clock call otherwise.
        items[key] = (
            value,
            flags,
            absolute_exptime(exptime, self.clock()) if exptime else 0.0,
            cas,
            self.clock() if self._flush_at else 0.0,
            old is not None,
        )
        if old is None:
            self._enqueue(key)
            size += EXTRA_COST
        else:
            size = len(value) - len(old[0])
        self._bytes += size
        if self._bytes > self.memory_limit:
            self._evict(key)
        return STORED

    def add(self, key: bytes, value: bytes, flags: int, exptime: int) -> Outcome:
        if self.lookup(key) is not None:
            return Outcome.NOT_STORED
        return self.set(key, value, flags, exptime)

    def replace(self, key: bytes, value: bytes, flags: int, exptime: int) -> Outcome:
        if self.lookup(key) is None:
            return Outcome.NOT_STORED
        return self.set(key, value, flags, exptime)

    def append(self, key: bytes, value: bytes) -> Outcome:
        """Concatenate after the stored value; flags and exptime of the stored item stay."""
        record = self.lookup(key)
        if record is None:
            return Outcome.NOT_STORED
        return self._put_absolute(key, record[0] + value, record[1], record[2])

    def prepend(self, key: bytes, value: bytes) -> Outcome:
        record = self.lookup(key)
        if record is None:
            return Outcome.NOT_STORED
        return self._put_absolute(key, value + record[0], record[1], record[2])

    def cas(self, key: bytes, value: bytes, flags: int, exptime: int, unique: int) -> Outcome:
        record = self.lookup(key)
        if record is None:
            return Outcome.NOT_FOUND
        if record[3] != unique:
            return Outcome.EXISTS
        return self.set(key, value, flags, exptime)

    def delete(self, key: bytes) -> Outcome:
        record = self.lookup(key)
        if record is None:
            return Outcome.NOT_FOUND
        self._drop(key, record)
        return Outcome.DELETED

    def incr(self, key: bytes, delta: int, decrement: bool = False) -> int | Outcome:
        """The new counter value, or NOT_FOUND / NON_NUMERIC.

        As memcached: incr wraps at 2**64, decr stops at 0, and a result shorter than the
        stored text is padded with spaces to the old length.
        """
        record = self.lookup(key)
        if record is None:
            return Outcome.NOT_FOUND
        old = record[0]
        number = parse_counter(old)
        if number is None:
            return Outcome.NON_NUMERIC
        number = max(number - delta, 0) if decrement else (number + delta) & U64
        text = b"%d" % number
        if len(text) < len(old):
            text = text.ljust(len(old))
        self._put_absolute(key, text, record[1], record[2])
        return number

    def flush_all(self, delay: int = 0) -> None:
        """Invalidate every item now, or those last written before now + delay (memcached)."""
        now = self.clock()
        if delay <= 0:
            self._clear()
        else:
            self._flush_at = now + delay - 1

    # --- replication -------------------------------------------------------------------------

    def install(self, key: bytes, value: bytes, flags: int, exptime: float, cas: int) -> None:
        """Put an item exactly as another node holds it (absolute exptime, its CAS)."""
        self.install_puts(((0, key, flags, exptime, cas, value),))  # the op is not read

    def install_puts(self, puts: Sequence[tuple[int, bytes, int, float, int, bytes]]) -> None:
        """`install` each ``(op, key, flags, exptime, cas, value)`` in order (a replica's batch).

        The batch's loop is written out here: the store's attributes are read once per batch
        instead of once per entry through a method call. One clock read serves the batch (the
        mtime a delayed flush compares against; the entries arrived together).
        """
        items = self._items
        get = items.get
        enqueue = self._enqueue
        limit = self.memory_limit
        mtime = self.clock() if self._flush_at else 0.0
        top = self._cas
        skipped = 0
        size = self._bytes
        for _, key, flags, exptime, cas, value in puts:
            if cas > top:
                skipped += cas - top
                top = cas
            old = get(key)
            items[key] = (value, flags, exptime, cas, mtime, old is not None)
            if old is None:
                enqueue(key)
            else:
                size -= len(key) + len(old[0]) + ITEM_COST
            size += len(key) + len(value) + ITEM_COST
            if size > limit:
                self._bytes = size
                self._evict(key)
                size = self._bytes
        self._bytes = size
        self._cas = top
        self._cas_skipped += skipped
        self._installed += len(puts)

    def remove(self, key: bytes) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= item_size(key, old[0])

    def set_flush_at(self, flush_at: float) -> None:
        if flush_at <= 0:
            self._clear()
        else:
            self._flush_at = flush_at

    @property
    def flush_at(self) -> float:
        return self._flush_at

    def items(self) -> Iterator[tuple[bytes, Item]]:
        """Every live item, oldest first (for snapshots)."""
        now = self.clock()
        for key, record in list(self._items.items()):
            exptime = record[2]
            if (exptime and exptime <= now) or self._flushed(record):
                continue
            yield key, _item(record)

    def frozen_items(self) -> dict[bytes, Record]:
        """Every stored record at this moment, in a dict no later write reaches.

        Records are immutable tuples, so the copy shares them with the store: it costs a
        dict entry per item (a C-level copy, ~0.1 s per million items), not the items, and a
        snapshot read from it over many event-loop turns is the store at one instant.
        Expired items are kept (they carry their absolute expiry, so a store loaded from them
        hides them as this one does); items a delayed ``flush_all`` that has passed made
        invisible are left out (a slower, filtering copy, only after such a flush).
        """
        flush_at = self._flush_at
        if flush_at and flush_at <= self.clock():
            return {key: record for key, record in self._items.items() if record[4] > flush_at}
        return self._items.copy()

    def replace_contents(self, other: Store) -> None:
        """Take over another store's items (a replica installing a snapshot built aside)."""
        self._items = other._items
        self._queue = other._queue
        self._queue_bound = other._queue_bound
        self._bytes = other._bytes
        self._flush_at = other._flush_at
        if other._cas > self._cas:
            self._cas_skipped += other._cas - self._cas
            self._cas = other._cas

    def stats(self) -> StoreStats:
        return StoreStats(
            curr_items=len(self._items),
            bytes=self._bytes,
            limit_maxbytes=self.memory_limit,
            total_items=self._cas - self._cas_skipped + self._installed,
            evictions=self._evictions,
            expired_unfetched=self._expired,
        )

    # --- internals ---------------------------------------------------------------------------

    def _flushed(self, record: Record) -> bool:
        flush_at = self._flush_at
        return bool(flush_at) and flush_at <= self.clock() and record[4] <= flush_at

    def _put_absolute(self, key: bytes, value: bytes, flags: int, exptime: float) -> Outcome:
        size = len(key) + len(value) + ITEM_OVERHEAD
        if size > self.item_size_max:
            return Outcome.TOO_LARGE
        if size > self.memory_limit:
            return Outcome.OUT_OF_MEMORY
        items = self._items
        old = items.get(key)
        cas = self._cas = self._cas + 1
        mtime = self.clock() if self._flush_at else 0.0
        items[key] = (value, flags, exptime, cas, mtime, old is not None)
        size += EXTRA_COST
        if old is None:
            self._enqueue(key)
        else:
            size -= len(key) + len(old[0]) + ITEM_COST
        self._bytes += size
        if self._bytes > self.memory_limit:
            self._evict(key)
        return Outcome.STORED

    def _enqueue(self, key: bytes) -> None:
        queue = self._queue
        queue.append(key)
        if len(queue) > self._queue_bound:
            # Mostly deleted keys by now: keep the live ones, in the store's insertion order.
            self._queue = deque(self._items)
            self._queue_bound = 2 * len(self._items) + QUEUE_SLACK

    def _evict(self, keep: bytes) -> None:
        """Evict until under the bound; ``keep`` (the item just stored) goes last."""
        items = self._items
        queue = self._queue
        kept = False
        while self._bytes > self.memory_limit and queue:
            key = queue.popleft()
            record = items.get(key)
            if record is None:
                continue
            if record[5]:
                items[key] = (record[0], record[1], record[2], record[3], record[4], False)
                queue.append(key)
                continue
            if key == keep and not kept:
                kept = True
                queue.append(key)
                continue
            del items[key]
            self._bytes -= item_size(key, record[0])
            self._evictions += 1

    def _clear(self) -> None:
        self._items.clear()
        self._queue.clear()
        self._queue_bound = QUEUE_SLACK
        self._bytes = 0
        self._flush_at = 0.0

    def _drop(self, key: bytes, record: Record) -> None:
        del self._items[key]
        self._bytes -= item_size(key, record[0])
