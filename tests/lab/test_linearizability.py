"""The register checker on known-good and known-bad histories."""

from __future__ import annotations

import random

from hakeeper.lab.linearizability import Kind, Op, Result, check


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
    assert not check(ops).linearizable


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
