"""A drill's session check: keys sampled from the backup's snapshot, read back from the
scratch cluster's restored store, and compared.

The snapshot in the backup is the truth: every key it holds was written (and acknowledged)
before the backup's position. `sample_snapshot` streams a store's object once (bounded
memory: a reservoir of `SAMPLE` keys, drawn with a seed made from the backup id, so a drill
of one backup checks the same keys each time) and `check_store` gets each sampled key from
the restored store's primary and compares its value and flags. A key that expires (or that
a delayed ``flush_all`` in the snapshot hides) before the read-back is over is not
compared, and counted apart.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from hakeeper.errors import SessionStoreError
from hakeeper.sessions import entries
from hakeeper.sessions.client_codec import Value
from hakeeper.sessions.entries import OP_FLUSH, OP_PUT, CorruptEntry
from hakeeper.sessions.snapshot import HEADER_MAX, SnapshotFormatError, SnapshotHeader

#: Keys compared per store: enough to catch a lost or changed range, a few hundred ms.
SAMPLE = 200
#: A key expiring within this long of the read-back is not compared (it may go meanwhile).
EXPIRY_MARGIN = 120.0
#: A partial entry held between chunks, at most (memcached's largest item is 1 GiB; a
#: drill refuses a snapshot entry beyond this rather than hold it).
MAX_ENTRY = 64 << 20
#: Keys read back per request to the store.
READ_BATCH = 16


class SessionReader(Protocol):
    async def read(self, store: str, keys: Sequence[bytes]) -> Mapping[bytes, Value | None]:
        """Each key's value on ``store``'s primary (None: absent)."""
        ...


@dataclass(frozen=True, slots=True)
class SampledKey:
    """A key of the snapshot; its value kept as its size and SHA-256 (a sample of items of
    up to a MiB each would otherwise hold hundreds of MiB)."""

    key: bytes
    size: int
    digest: bytes
    flags: int
    exptime: float  # absolute Unix time; 0: never

    def same(self, value: Value) -> bool:
        return (
            value.flags == self.flags
            and len(value.data) == self.size
            and hashlib.sha256(value.data).digest() == self.digest
        )


@dataclass(frozen=True, slots=True)
class SnapshotSample:
    header: SnapshotHeader
    keys: tuple[SampledKey, ...]
    flush_at: float  # a delayed flush_all still to come when the snapshot was taken; 0: none


@dataclass(frozen=True, slots=True)
class SessionCheck:
    """One store's read-back: how many sampled keys were compared and how many were equal."""

    store: str
    keys: int  # in the snapshot
    checked: int
    equal: int
    skipped: int  # expiring during the drill: not compared
    mismatch: str = ""  # the first difference, naming the key

    @property
    def ok(self) -> bool:
        return not self.mismatch and self.equal == self.checked

    def line(self) -> str:
        verdict = "equal" if self.ok else f"MISMATCH: {self.mismatch}"
        skipped = f", {self.skipped} expiring not compared" if self.skipped else ""
        return (
            f"  sessions: {self.store}: {self.equal} of {self.checked} sampled keys read back "
            f"equal ({self.keys} in the backup{skipped}): {verdict}"
        )


async def sample_snapshot(
    chunks: AsyncIterator[bytes], seed: str, size: int = SAMPLE
) -> SnapshotSample:
    """A uniform sample of ``size`` keys of a snapshot's bytes (its header line first)."""
    rng = random.Random(seed)
    head = b""
    header: SnapshotHeader | None = None
    tail = b""
    seen = 0
    flush_at = 0.0
    reservoir: list[SampledKey] = []
    async for piece in chunks:
        if header is None:
            head += piece
            nl = head.find(b"\n")
            if nl < 0:
                if len(head) > HEADER_MAX:
                    break
                continue
            header = SnapshotHeader.parse(head[: nl + 1])
            piece, head = head[nl + 1 :], b""
        data = tail + piece if tail else piece
        decoded, used = entries.decode_prefix(data)
        tail = data[used:]
        if len(tail) > MAX_ENTRY:
            raise CorruptEntry(f"a snapshot entry longer than {MAX_ENTRY} bytes")
        for op, key, flags, exptime, _cas, value in decoded:
            if op == OP_FLUSH:
                flush_at = exptime
                continue
            if op != OP_PUT:
                raise CorruptEntry(f"a snapshot holds only sets and a flush, not op {op}")
            seen += 1
            slot = seen - 1 if seen <= size else rng.randrange(seen)
            if slot < size:
                item = SampledKey(key, len(value), hashlib.sha256(value).digest(), flags, exptime)
                if slot == len(reservoir):
                    reservoir.append(item)
                else:
                    reservoir[slot] = item
    if header is None:
        raise SnapshotFormatError("the session snapshot in the backup has no header line")
    if tail or seen != header.keys:
        raise CorruptEntry(
            f"the session snapshot announced {header.keys} keys but holds {seen}"
            f"{' and a partial entry' if tail else ''}"
        )
    return SnapshotSample(header, tuple(reservoir), flush_at)


def _comparable(item: SampledKey, flush_at: float, until: float) -> bool:
    """Whether ``item`` is still to be seen when the read-back ends at ``until``."""
    if item.exptime and item.exptime <= until:
        return False
    return not (flush_at and flush_at <= until)


async def check_store(
    reader: SessionReader, store: str, sample: SnapshotSample, now: float | None = None
) -> SessionCheck:
    """Read the sampled keys back from ``store`` and compare; the first mismatch is named."""
    until = (time.time() if now is None else now) + EXPIRY_MARGIN
    wanted = [k for k in sample.keys if _comparable(k, sample.flush_at, until)]
    skipped = len(sample.keys) - len(wanted)
    equal = 0
    mismatch = ""
    # In batches: values of up to a MiB each are never all held at once.
    for start in range(0, len(wanted), READ_BATCH):
        batch = wanted[start : start + READ_BATCH]
        try:
            found = await reader.read(store, [k.key for k in batch])
        except SessionStoreError as exc:
            return SessionCheck(
                store, sample.header.keys, len(wanted), equal, skipped, f"read-back failed: {exc}"
            )
        for item in batch:
            got = found.get(item.key)
            if got is not None and item.same(got):
                equal += 1
            elif not mismatch:
                mismatch = _difference(item, got)
    return SessionCheck(store, sample.header.keys, len(wanted), equal, skipped, mismatch)


def _difference(item: SampledKey, got: Value | None) -> str:
    shown = item.key.decode("utf-8", "backslashreplace")
    if got is None:
        return f"key {shown!r} is missing from the restored store"
    other = " (other bytes)" if len(got.data) == item.size else ""
    return (
        f"key {shown!r} reads back {len(got.data)} bytes, flags {got.flags}; the backup "
        f"holds {item.size} bytes, flags {item.flags}{other}"
    )


def failures(checks: Sequence[SessionCheck], not_reseeded: Sequence[str] = ()) -> str:
    """Why the session stores fail a drill ("": they pass): each check's first wrong key,
    each store of the backup the restore did not reseed."""
    reasons = [f"session store {c.store}: {c.mismatch}" for c in checks if not c.ok]
    reasons += [
        f"session store {name} is in the backup but was not reseeded (the backup's config "
        "runs no session store)"
        for name in not_reseeded
    ]
    return "; ".join(reasons)
