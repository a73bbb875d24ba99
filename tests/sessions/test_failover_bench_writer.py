"""The figures of benchmarks/sessions_failover_vs_sentinel.py: how its writer's log becomes a
write outage and a count of lost acknowledged writes (the same code for hakeeper and Redis)."""

from __future__ import annotations

import asyncio

from benchmarks.write_outage import WriterLog, key_value, lost_writes, run_writer, write_outage


def test_outage_runs_from_last_ack_before_the_fault_to_first_ack_after() -> None:
    assert write_outage([1.0, 1.5, 2.0, 4.5, 4.6], fault_at=2.2) == 2.5


def test_an_ack_at_the_fault_moment_counts_as_before() -> None:
    assert write_outage([1.0, 2.0, 3.0], fault_at=2.0) == 1.0


def test_no_outage_without_acks_on_both_sides_of_the_fault() -> None:
    assert write_outage([1.0, 2.0], fault_at=3.0) is None
    assert write_outage([4.0], fault_at=3.0) is None
    assert write_outage([], fault_at=3.0) is None


def test_missing_or_different_values_are_lost_writes() -> None:
    acked = {b"k0": b"v0", b"k1": b"v1", b"k2": b"v2"}
    read = {b"k0": b"v0", b"k1": None, b"k2": b"other"}
    assert lost_writes(acked, read) == 2
    assert lost_writes(acked, {}) == 3
    assert lost_writes(acked, dict(acked)) == 0


def test_every_write_has_its_own_key_and_value() -> None:
    assert key_value("t", 7) == (b"t:k7", b"t:v7")
    assert len({key_value("t", i) for i in range(100)}) == 100


async def test_writer_counts_refused_and_timed_out_writes_as_unknown_and_goes_on() -> None:
    outcomes = iter([True, False, None, True])  # None: the store never answers

    async def write(key: bytes, value: bytes) -> bool:
        outcome = next(outcomes)
        if outcome is None:
            await asyncio.sleep(10)
        return bool(outcome)

    log = WriterLog()
    await run_writer(
        write, asyncio.Event(), log, prefix="t", timeout=0.05, max_writes=4, pause_after_failure=0
    )
    assert [ack.key for ack in log.acks] == [b"t:k0", b"t:k3"]
    assert log.failures == 2
    assert log.acknowledged() == {b"t:k0": b"t:v0", b"t:k3": b"t:v3"}


async def test_writer_stops_when_told() -> None:
    stop = asyncio.Event()

    async def write(key: bytes, value: bytes) -> bool:
        stop.set()
        return True

    log = WriterLog()
    await run_writer(write, stop, log, prefix="t", timeout=1.0, max_writes=1000)
    assert len(log.acks) == 1
