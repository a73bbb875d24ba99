"""The pure snapshot and seed (`sessions.snapshot`): a frozen view, its chunks, a seed load."""

from __future__ import annotations

import pytest

from hakeeper.sessions import entries
from hakeeper.sessions.entries import CorruptEntry
from hakeeper.sessions.snapshot import (
    FORMAT_VERSION,
    FrozenView,
    SeedLoad,
    SnapshotFormatError,
    SnapshotHeader,
)
from hakeeper.sessions.store import Store
from tests.sessions.test_store import NOW, make_store


def read_all(view: FrozenView, limit: int) -> list[bytes]:
    chunks = []
    more = True
    while more:
        chunk, more = view.next_chunk(limit, 0.0)
        chunks.append(chunk)
    return chunks


def contents(store: Store) -> dict[bytes, tuple[bytes, int, float]]:
    return {key: (item.value, item.flags, item.exptime) for key, item in store.items()}


def test_frozen_view_holds_the_store_at_the_freeze_not_later_writes() -> None:
    store, _ = make_store()
    for i in range(100):
        store.set(b"k%d" % i, b"v%d" % i, 0, 0)
    view = FrozenView(store, 3, 42, 7, 0.0)
    store.set(b"k1", b"changed", 0, 0)
    store.set(b"new", b"x", 0, 0)
    store.delete(b"k2")
    decoded = entries.decode(b"".join(read_all(view, 64)))
    values = {entry[1]: entry[5] for entry in decoded}
    assert (view.epoch, view.seq, view.keys) == (3, 42, 100)
    assert values == {b"k%d" % i: b"v%d" % i for i in range(100)}


def test_expired_items_travel_with_their_expiry_and_stay_hidden() -> None:
    store, clock = make_store()
    store.set(b"short", b"v", 0, 5)
    store.set(b"kept", b"v", 0, 0)
    clock.now += 10
    view = FrozenView(store, 1, 1, 1, 0.0)
    load = SeedLoad(Store(clock=clock), 1, 1, 0.0)
    load.feed(b"".join(read_all(view, 1 << 20)), 0.0)
    assert view.keys == 2
    assert list(contents(load.finish(2))) == [b"kept"]


def test_items_a_passed_delayed_flush_hid_are_left_out() -> None:
    store, clock = make_store()
    store.set(b"before", b"v", 0, 0)
    store.flush_all(5)
    clock.now += 10
    store.set(b"after", b"v", 0, 0)
    view = FrozenView(store, 1, 1, 1, 0.0)
    load = SeedLoad(Store(clock=clock), 1, 1, 0.0)
    load.feed(b"".join(read_all(view, 1 << 20)), 0.0)
    assert view.keys == 1
    assert list(contents(load.finish(1))) == [b"after"]


def test_chunks_stay_near_their_size_and_hold_whole_entries() -> None:
    store, _ = make_store()
    for i in range(500):
        store.set(b"key%d" % i, b"x" * 100, 0, 0)
    chunks = read_all(FrozenView(store, 1, 1, 1, 0.0), 4096)
    entry = len(entries.encode_put(b"key100", b"x" * 100, 0, 0.0, 1))
    assert len(chunks) > 10
    assert all(len(chunk) < 4096 + entry for chunk in chunks)
    assert sum(len(entries.decode(chunk)) for chunk in chunks) == 500


def test_seed_load_rebuilds_the_store_from_pieces_cut_anywhere() -> None:
    store, clock = make_store()
    for i in range(300):
        store.set(b"k%d" % i, b"value-%d" % i, i, 1000 if i % 2 else 0)
    store.flush_all(3600)
    payload = b"".join(read_all(FrozenView(store, 1, 1, 1, 0.0), 2048))
    load = SeedLoad(Store(clock=clock), 1, 1, 0.0)
    for start in range(0, len(payload), 777):
        load.feed(payload[start : start + 777], 0.0)
    seeded = load.finish(300)
    assert contents(seeded) == contents(store)
    assert seeded.flush_at == store.flush_at


def test_seed_load_refuses_a_truncated_snapshot() -> None:
    store, _ = make_store()
    for i in range(10):
        store.set(b"k%d" % i, b"v", 0, 0)
    payload = b"".join(read_all(FrozenView(store, 1, 1, 1, 0.0), 1 << 20))
    load = SeedLoad(Store(), 1, 1, 0.0)
    load.feed(payload[:-3], 0.0)
    with pytest.raises(CorruptEntry, match="ends inside an entry"):
        load.finish(10)


def test_seed_load_refuses_fewer_keys_than_announced() -> None:
    load = SeedLoad(Store(), 1, 1, 0.0)
    load.feed(entries.encode_put(b"k", b"v", 0, 0.0, 1), 0.0)
    with pytest.raises(CorruptEntry, match="announced 2 keys but holds 1"):
        load.finish(2)


def test_seed_load_refuses_entries_a_snapshot_never_holds() -> None:
    load = SeedLoad(Store(), 1, 1, 0.0)
    with pytest.raises(CorruptEntry, match="not op 2"):
        load.feed(entries.encode_delete(b"k"), 0.0)


def test_seed_load_refuses_a_partial_entry_longer_than_any_item() -> None:
    load = SeedLoad(Store(item_size_max=1024), 1, 1, 0.0)
    huge = entries.encode_put(b"k", b"x" * 10_000, 0, 0.0, 1)
    with pytest.raises(CorruptEntry, match="longer than"):
        load.feed(huge[:5000], 0.0)


def test_seed_load_refuses_a_snapshot_larger_than_the_memory_bound() -> None:
    load = SeedLoad(Store(memory_limit=64 * 1024), 1, 1, 0.0)
    payload = b"".join(entries.encode_put(b"k%d" % i, b"x" * 500, 0, 0.0, i) for i in range(500))
    load.feed(payload, 0.0)
    with pytest.raises(CorruptEntry, match="larger --memory"):
        load.finish(500)


def test_header_round_trips() -> None:
    header = SnapshotHeader(epoch=4, seq=1234, keys=99)
    assert SnapshotHeader.parse(header.encode()) == header


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"PK\x03\x04 zip\n", "not a session-store snapshot"),
        (b"hakeeper-sessions-snapshot 1 x 2 3\n", "bad session-store snapshot header"),
        (b"hakeeper-sessions-snapshot %d 1 2 3\n" % (FORMAT_VERSION + 1), "newer hakeeper"),
    ],
)
def test_header_parse_names_what_is_wrong(line: bytes, problem: str) -> None:
    with pytest.raises(SnapshotFormatError, match=problem):
        SnapshotHeader.parse(line)


def test_store_frozen_items_is_a_copy_sharing_the_records() -> None:
    store = Store(clock=lambda: NOW)
    store.set(b"a", b"1", 0, 0)
    frozen = store.frozen_items()
    store.set(b"a", b"2", 0, 0)
    assert frozen[b"a"][0] == b"1"
