"""A drill's session check with a fake store: the sample drawn from a snapshot's bytes, and
the comparison that names the first key read back wrong."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence

import pytest

from hakeeper.cli.dr import DrillResult
from hakeeper.cli.dr_sessions import EXPIRY_MARGIN, check_store, failures, sample_snapshot
from hakeeper.errors import SessionStoreError
from hakeeper.sessions import entries
from hakeeper.sessions.client_codec import Value
from hakeeper.sessions.entries import CorruptEntry
from hakeeper.sessions.snapshot import SnapshotHeader

NOW = 1_800_000_000.0


def snapshot(items: Mapping[bytes, tuple[bytes, int, float]], flush_at: float = 0.0) -> bytes:
    body = b"".join(entries.encode_put(k, v, f, e, 1) for k, (v, f, e) in items.items())
    if flush_at:
        body += entries.encode_flush(flush_at)
    return SnapshotHeader(7, 99, len(items)).encode() + body


async def pieces(data: bytes, size: int = 5) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


class FakeStore:
    """A restored store: what ``read`` answers, or the error it raises."""

    def __init__(self, items: Mapping[bytes, tuple[bytes, int, float]]) -> None:
        self.values = {k: Value(v, f, None) for k, (v, f, _) in items.items()}
        self.error: SessionStoreError | None = None

    async def read(self, store: str, keys: Sequence[bytes]) -> Mapping[bytes, Value | None]:
        if self.error is not None:
            raise self.error
        return {k: self.values.get(k) for k in keys}


ITEMS = {b"k%d" % i: (b"v%d" % i, i, 0.0) for i in range(50)}


async def test_a_small_snapshot_is_sampled_whole_and_reads_back_equal() -> None:
    sample = await sample_snapshot(pieces(snapshot(ITEMS)), seed="b1/web")
    assert sample.header == SnapshotHeader(7, 99, 50)
    assert {k.key for k in sample.keys} == set(ITEMS)
    check = await check_store(FakeStore(ITEMS), "web", sample, now=NOW)
    assert (check.ok, check.checked, check.equal, check.keys) == (True, 50, 50, 50)
    assert "50 of 50 sampled keys read back equal" in check.line()


async def test_a_large_snapshot_gives_a_bounded_sample_the_same_for_one_seed() -> None:
    many = {b"key-%d" % i: (b"x", 0, 0.0) for i in range(3000)}
    data = snapshot(many)
    first = await sample_snapshot(pieces(data, 4096), seed="b1/web", size=100)
    again = await sample_snapshot(pieces(data, 777), seed="b1/web", size=100)
    assert len(first.keys) == 100
    assert first.keys == again.keys
    # Drawn from the whole snapshot, not its first keys.
    assert max(int(k.key.split(b"-")[1]) for k in first.keys) > 1000


async def test_a_key_missing_from_the_restored_store_fails_the_check_naming_it() -> None:
    sample = await sample_snapshot(pieces(snapshot(ITEMS)), seed="s")
    restored = dict(ITEMS)
    del restored[b"k13"]
    check = await check_store(FakeStore(restored), "web", sample, now=NOW)
    assert not check.ok
    assert check.equal == 49
    assert check.mismatch == "key 'k13' is missing from the restored store"
    assert "MISMATCH: key 'k13'" in check.line()


async def test_a_key_read_back_with_other_bytes_fails_the_check_naming_it() -> None:
    sample = await sample_snapshot(pieces(snapshot(ITEMS)), seed="s")
    restored = dict(ITEMS) | {b"k4": (b"zz", 4, 0.0)}
    check = await check_store(FakeStore(restored), "web", sample, now=NOW)
    assert not check.ok
    assert "key 'k4' reads back 2 bytes, flags 4" in check.mismatch
    assert "(other bytes)" in check.mismatch


async def test_keys_expiring_during_the_drill_are_not_compared() -> None:
    items = dict(ITEMS) | {
        b"soon": (b"s", 0, NOW + EXPIRY_MARGIN / 2),
        b"late": (b"l", 0, NOW + 3600),
    }
    sample = await sample_snapshot(pieces(snapshot(items)), seed="s")
    restored = {k: v for k, v in items.items() if k != b"soon"}
    check = await check_store(FakeStore(restored), "web", sample, now=NOW)
    assert (check.ok, check.checked, check.skipped) == (True, 51, 1)


async def test_a_pending_flush_that_passes_during_the_drill_skips_every_key() -> None:
    sample = await sample_snapshot(pieces(snapshot(ITEMS, flush_at=NOW + 1)), seed="s")
    check = await check_store(FakeStore({}), "web", sample, now=NOW)
    assert (check.ok, check.checked, check.skipped) == (True, 0, 50)


async def test_a_store_that_does_not_answer_fails_the_check_with_the_reason() -> None:
    sample = await sample_snapshot(pieces(snapshot(ITEMS)), seed="s")
    store = FakeStore(ITEMS)
    store.error = SessionStoreError("no primary among the session store's nodes")
    check = await check_store(store, "web", sample, now=NOW)
    assert not check.ok
    assert check.mismatch.startswith("read-back failed: no primary")


@pytest.mark.parametrize("cut", [1, 10])
async def test_a_truncated_snapshot_is_refused(cut: int) -> None:
    with pytest.raises(CorruptEntry, match="announced 50 keys"):
        await sample_snapshot(pieces(snapshot(ITEMS)[:-cut]), seed="s")


async def test_a_mismatch_fails_the_drill_and_its_report_names_the_key() -> None:
    sample = await sample_snapshot(pieces(snapshot(ITEMS)), seed="s")
    good = await check_store(FakeStore(ITEMS), "a", sample, now=NOW)
    bad = await check_store(FakeStore({}), "web", sample, now=NOW)
    reason = failures([good, bad])
    assert reason.startswith("session store web: key 'k")
    assert reason.endswith("' is missing from the restored store")
    assert failures([good]) == ""
    result = DrillResult("b1", False, 12.0, 60.0, reason, session_checks=(good, bad))
    lines = "\n".join(result.lines())
    assert "FAILED: session store web: key 'k" in lines
    assert "sessions: web: 0 of 50 sampled keys read back equal" in lines


def test_a_store_in_the_backup_that_was_not_reseeded_fails_the_drill() -> None:
    assert failures([], ["web"]) == (
        "session store web is in the backup but was not reseeded (the backup's config runs no "
        "session store)"
    )
