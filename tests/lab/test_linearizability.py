"""The register checker on known-good and known-bad histories."""

from __future__ import annotations

import random
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from hakeeper.lab.linearizability import Kind, Op, Result, check, check_by_search, check_by_zones


def put(call: float, ret: float, value: str, result: Result = Result.OK) -> Op:
    return Op(Kind.SET, call, ret, result, value)


def read(call: float, ret: float, value: str | None) -> Op:
    return Op(Kind.GET, call, ret, Result.OK, value)


def cas(call: float, ret: float, expected: str, value: str, result: Result = Result.OK) -> Op:
    return Op(Kind.CAS, call, ret, result, value, expected)


def test_sequential_history_is_linearizable() -> None:
    ops = [put(0, 1, "a"), read(2, 3, "a"), cas(4, 5, "a", "b"), read(6, 7, "b")]
    assert check(ops).linearizable


def test_read_of_an_overwritten_value_after_the_overwrite_completed_is_not() -> None:
    ops = [put(0, 1, "a"), put(2, 3, "b"), read(4, 5, "a")]
    assert not check(ops).linearizable


def test_lost_acknowledged_write_is_caught() -> None:
    ops = [put(0, 1, "a"), read(2, 3, None)]
    verdict = check(ops)
    assert not verdict.linearizable
    assert "nothing, as before any write (read as late as 2.000)" in verdict.why


def test_concurrent_write_may_be_seen_either_way() -> None:
    ops = [put(0, 1, "a"), put(2, 6, "b"), read(3, 4, "b"), read(3, 4, "a")]
    # The reads overlap each other and the second write: read a, then b, then read b.
    assert check(ops).linearizable


def test_reads_that_flip_back_are_not_linearizable() -> None:
    ops = [put(0, 1, "a"), put(2, 10, "b"), read(3, 4, "b"), read(5, 6, "a")]
    assert not check(ops).linearizable


def test_unknown_write_may_never_happen() -> None:
    ops = [put(0, 1, "a"), put(2, 3, "b", Result.UNKNOWN), read(4, 5, "a")]
    assert check(ops).linearizable


def test_unknown_write_may_happen_late() -> None:
    ops = [put(0, 1, "a"), put(2, 3, "b", Result.UNKNOWN), read(4, 5, "a"), read(6, 7, "b")]
    assert check(ops).linearizable


def test_unknown_write_cannot_happen_before_its_call() -> None:
    ops = [put(0, 1, "a"), read(2, 3, "b"), put(4, 5, "b", Result.UNKNOWN)]
    assert not check(ops).linearizable


def test_cas_that_stored_needs_its_expected_value() -> None:
    ops = [put(0, 1, "a"), put(2, 3, "b"), cas(4, 5, "a", "c")]
    assert not check(ops).linearizable


def test_cas_refused_while_its_value_is_current_is_not_linearizable() -> None:
    ops = [put(0, 1, "a"), cas(2, 3, "a", "c", Result.EXISTS)]
    assert not check(ops).linearizable


def test_cas_not_found_on_absent_key_is_fine() -> None:
    assert check([cas(0, 1, "a", "b", Result.NOT_FOUND), read(2, 3, None)]).linearizable


def test_value_no_one_wrote_is_not_linearizable() -> None:
    assert not check([put(0, 1, "a"), read(2, 3, "z")]).linearizable


def test_many_concurrent_clients_of_a_real_register_are_linearizable() -> None:
    rng = random.Random(7)
    ops: list[Op] = []
    state: str | None = None
    clock = 0.0
    for index in range(400):
        # Simulate an atomic register: each op takes effect at its midpoint; intervals overlap.
        call = clock
        clock += rng.random()
        kind = rng.choice([Kind.SET, Kind.GET, Kind.CAS])
        if kind is Kind.SET:
            state = f"v{index}"
            ops.append(put(call - 0.5, clock + 0.5, state))
        elif kind is Kind.GET:
            ops.append(read(call - 0.5, clock + 0.5, state))
        else:
            expected = state or "none"
            ops.append(
                cas(call - 0.5, clock + 0.5, expected, f"v{index}")
                if state
                else cas(call - 0.5, clock + 0.5, expected, f"v{index}", Result.NOT_FOUND)
            )
            if state:
                state = f"v{index}"
    assert check(ops).linearizable


@st.composite
def set_get_histories(draw: st.DrawFn) -> list[Op]:
    """Up to 7 sets (acknowledged or unknown) and gets with distinct instants; a get reads
    nothing, a written value, or one never written."""
    count = draw(st.integers(1, 7))
    instants = draw(
        st.lists(st.integers(0, 60), min_size=2 * count, max_size=2 * count, unique=True)
    )
    ops = []
    for index in range(count):
        call, ret = sorted(instants[2 * index : 2 * index + 2])
        if draw(st.booleans()):
            unknown = draw(st.booleans())
            ops.append(put(call, ret, f"v{index}", Result.UNKNOWN if unknown else Result.OK))
        else:
            value = draw(st.sampled_from([None, "ghost", *(f"v{i}" for i in range(count))]))
            ops.append(read(call, ret, value))
    return ops


@settings(max_examples=1500, deadline=None)
@given(set_get_histories())
def test_the_zones_agree_with_the_search_on_every_small_set_get_history(ops: list[Op]) -> None:
    assert check_by_zones(ops).linearizable == check_by_search(ops, None, 10**7).linearizable


def real_register(count: int, seed: int) -> list[Op]:
    """``count`` sets and gets of four clients on an atomic register, each taking effect
    inside its interval; every tenth set is unknown and a third of those never happen."""
    rng = random.Random(seed)
    effects = sorted(rng.uniform(0, count) for _ in range(count))
    ops: list[Op] = []
    state: str | None = None
    for index, at in enumerate(effects):
        call, ret = at - rng.uniform(0, 3), at + rng.uniform(0, 3)
        if rng.random() < 0.5:
            unknown = index % 10 == 0
            if unknown and rng.random() < 0.3:
                ops.append(put(call, ret, f"v{index}", Result.UNKNOWN))
                continue  # the write never took effect
            state = f"v{index}"
            ops.append(put(call, ret, state, Result.UNKNOWN if unknown else Result.OK))
        else:
            ops.append(read(call, ret, state))
    return ops


def test_a_long_overlapping_set_get_history_is_decided_in_seconds() -> None:
    ops = real_register(20_000, seed=3)
    started = time.monotonic()
    assert check(ops).linearizable
    assert time.monotonic() - started < 30  # the search gave up on a fifth of this length


def test_one_stale_read_in_a_long_set_get_history_is_found() -> None:
    ops = real_register(20_000, seed=3)
    last_write = max(
        (op for op in ops if op.kind is Kind.SET and not op.unknown), key=lambda op: op.ret
    )
    first = next(op for op in ops if op.kind is Kind.SET and not op.unknown)
    # A read of the first value, after the last acknowledged write returned.
    ops.append(read(last_write.ret + 10, last_write.ret + 11, first.value))
    assert not check(ops).linearizable
