"""The pure store on a virtual clock: TTL rules, LRU eviction by bytes, counters, flush."""

from __future__ import annotations

from hakeeper.sessions.store import ITEM_COST, Outcome, Store

NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def make_store(**kwargs: int) -> tuple[Store, Clock]:
    clock = Clock()
    return Store(clock=clock, **kwargs), clock


def test_relative_exptime_expires_after_its_seconds() -> None:
    store, clock = make_store()
    store.set(b"k", b"v", 0, 10)
    clock.now += 9.5
    assert store.get(b"k") is not None
    clock.now += 1
    assert store.get(b"k") is None


def test_exptime_beyond_30_days_is_an_absolute_unix_time() -> None:
    store, clock = make_store()
    store.set(b"k", b"v", 0, int(NOW) + 100)
    clock.now += 99
    assert store.get(b"k") is not None
    clock.now += 2
    assert store.get(b"k") is None


def test_absolute_exptime_in_the_past_is_already_expired() -> None:
    store, _ = make_store()
    store.set(b"k", b"v", 0, 2_592_001)
    assert store.get(b"k") is None


def test_negative_exptime_is_already_expired() -> None:
    store, _ = make_store()
    assert store.set(b"k", b"v", 0, -1) is Outcome.STORED
    assert store.get(b"k") is None


def test_eviction_drops_least_recently_used_by_bytes() -> None:
    size = 1 + 100 + ITEM_COST
    store, _ = make_store(memory_limit=3 * size)
    for key in (b"a", b"b", b"c"):
        store.set(key, b"x" * 100, 0, 0)
    store.get(b"a")
    store.set(b"d", b"x" * 100, 0, 0)
    assert store.get(b"b") is None
    assert all(store.get(key) is not None for key in (b"a", b"c", b"d"))
    assert store.stats().evictions == 1


def test_item_over_size_limit_is_refused() -> None:
    store, _ = make_store(item_size_max=1000)
    assert store.set(b"k", b"x" * 1000, 0, 0) is Outcome.TOO_LARGE


def test_incr_wraps_at_2_pow_64_and_decr_stops_at_zero() -> None:
    store, _ = make_store()
    store.set(b"n", b"18446744073709551615", 0, 0)
    assert store.incr(b"n", 2) == 1
    assert store.incr(b"n", 5, decrement=True) == 0


def test_shorter_counter_is_space_padded_like_memcached() -> None:
    store, _ = make_store()
    store.set(b"n", b"100", 0, 0)
    store.incr(b"n", 1, decrement=True)
    item = store.get(b"n")
    assert item is not None
    assert item.value == b"99 "


def test_cas_succeeds_only_with_the_current_unique() -> None:
    store, _ = make_store()
    store.set(b"k", b"v1", 0, 0)
    item = store.get(b"k")
    assert item is not None
    unique = item.cas
    assert store.cas(b"k", b"v2", 0, 0, unique + 1) is Outcome.EXISTS
    assert store.cas(b"k", b"v2", 0, 0, unique) is Outcome.STORED
    assert store.cas(b"k", b"v3", 0, 0, unique) is Outcome.EXISTS


def test_delayed_flush_invalidates_older_items_when_due() -> None:
    store, clock = make_store()
    store.set(b"old", b"v", 0, 0)
    store.flush_all(10)
    assert store.get(b"old") is not None
    clock.now += 10
    assert store.get(b"old") is None
    store.set(b"new", b"v", 0, 0)
    assert store.get(b"new") is not None


def test_append_keeps_flags_and_expiry() -> None:
    store, _ = make_store()
    store.set(b"k", b"ab", 5, 10)
    store.append(b"k", b"cd")
    item = store.get(b"k")
    assert item is not None
    assert (item.value, item.flags, item.exptime) == (b"abcd", 5, NOW + 10)


def test_overwriting_a_key_makes_it_most_recently_used() -> None:
    size = 1 + 100 + ITEM_COST
    store, _ = make_store(memory_limit=3 * size)
    for key in (b"a", b"b", b"c"):
        store.set(key, b"x" * 100, 0, 0)
    store.set(b"a", b"y" * 100, 0, 0)
    store.set(b"d", b"x" * 100, 0, 0)
    assert store.get(b"b") is None
    assert store.get(b"a") is not None


def test_overwrite_accounts_for_the_new_value_size_only() -> None:
    store, _ = make_store()
    store.set(b"k", b"x" * 100, 0, 0)
    store.set(b"k", b"x" * 10, 0, 0)
    assert store.stats().bytes == 1 + 10 + ITEM_COST


def test_total_items_counts_local_stores_and_installed_items() -> None:
    store, _ = make_store()
    store.set(b"a", b"1", 0, 0)
    store.set(b"a", b"2", 0, 0)
    store.install(b"b", b"3", 0, 0.0, 1000)
    store.set(b"c", b"4", 0, 0)
    assert store.stats().total_items == 4


def test_eviction_still_takes_the_oldest_after_many_deleted_keys() -> None:
    size = 1 + 100 + ITEM_COST
    store, _ = make_store(memory_limit=3 * size)
    for number in range(10_000):
        key = b"gone%d" % number
        store.set(key, b"x", 0, 0)
        store.delete(key)
    for key in (b"a", b"b", b"c", b"d"):
        store.set(key, b"x" * 100, 0, 0)
    assert store.get(b"a") is None
    assert all(store.get(key) is not None for key in (b"b", b"c", b"d"))


def test_items_read_since_their_last_chance_all_survive_one_round_of_eviction() -> None:
    size = 1 + 100 + ITEM_COST
    store, _ = make_store(memory_limit=3 * size)
    for key in (b"a", b"b", b"c"):
        store.set(key, b"x" * 100, 0, 0)
    for key in (b"a", b"b", b"c"):
        store.get(key)
    store.set(b"d", b"x" * 100, 0, 0)
    assert store.get(b"a") is None
    assert store.stats().evictions == 1


def test_installed_item_larger_than_memory_evicts_everything_and_ends() -> None:
    store, _ = make_store(memory_limit=1000)
    store.set(b"a", b"x", 0, 0)
    store.install(b"big", b"x" * 2000, 0, 0.0, 7)
    assert store.stats().curr_items == 0


def test_peek_record_does_not_save_an_item_from_eviction() -> None:
    size = 1 + 100 + ITEM_COST
    store, _ = make_store(memory_limit=3 * size)
    for key in (b"a", b"b", b"c"):
        store.set(key, b"x" * 100, 0, 0)
    assert store.peek_record(b"a") is not None
    store.set(b"d", b"x" * 100, 0, 0)
    assert store.peek_record(b"a") is None


def test_installing_a_batch_of_puts_leaves_the_store_as_installing_each() -> None:
    puts = [
        (1, b"k%d" % (i % 7), i, 0.0 if i % 2 else NOW + 60, 10 + i, b"v" * (40 + i))
        for i in range(30)
    ]
    one_by_one, _ = make_store(memory_limit=6 * (2 + 60 + ITEM_COST))
    one_by_one.set(b"local", b"x", 0, 0)
    for _, key, flags, exptime, cas, value in puts:
        one_by_one.install(key, value, flags, exptime, cas)
    batched, _ = make_store(memory_limit=6 * (2 + 60 + ITEM_COST))
    batched.set(b"local", b"x", 0, 0)
    batched.install_puts(puts)
    assert batched.stats() == one_by_one.stats()
    assert batched.stats().evictions > 0
    assert list(batched.items()) == list(one_by_one.items())
