"""The nemesis checkers on hand-made histories: a clean one passes every invariant; each
invariant catches the violation it exists for."""

from __future__ import annotations

import dataclasses

import pytest

from hakeeper.lab.loopback import Record as ServiceRecord
from hakeeper.lab.nemesis_checks import INVARIANTS, InvariantResult, Verdict, check_history
from hakeeper.lab.nemesis_history import (
    Fault,
    History,
    HolderSample,
    LeaderSample,
    Operation,
    Watched,
)
from hakeeper.lab.nemesis_outages import recovery_from
from tests.lab.nemesis_histories import CRASH, ISOLATE, RUN, clean_history, http_failing


def invariant(verdict: Verdict, name: str) -> InvariantResult:
    return next(i for i in verdict.invariants if i.name == name)


def final_read(history: History, key: str) -> Operation:
    return max(
        (op for op in history.operations if op.kind == "session-read" and op.key == key),
        key=lambda op: op.start,
    )


def test_a_clean_history_passes_every_invariant() -> None:
    verdict = check_history(clean_history())
    assert [i.name for i in verdict.invariants] == list(INVARIANTS)
    assert [i for i in verdict.invariants if i.violations] == []
    assert verdict.ok
    assert verdict.run == RUN


@pytest.mark.parametrize("what", ["vip", "singleton"])
def test_two_holders_in_one_sample_is_a_violation(what: Watched) -> None:
    history = clean_history()
    history = dataclasses.replace(
        history, holders=(*history.holders, HolderSample(what, 20.0, ("n1", "n2")))
    )
    verdict = check_history(history)
    found = invariant(verdict, f"{what}-single-holder")
    assert found.violations == 1
    assert "n1, n2 at 20.000" in found.examples[0]
    assert not verdict.ok


def test_a_singleton_killed_by_a_crash_does_not_overlap_its_successor() -> None:
    # n1's singleton has no stop line: the crash at 10 ends it before n2's starts at 11.5.
    assert invariant(check_history(clean_history()), "singleton-single-holder").violations == 0


def test_a_singleton_gone_without_a_stop_line_ends_when_the_sampler_misses_it() -> None:
    # No crash this time: n1's singleton (no stop line) was killed some other way; the
    # samples stop finding it at 10.5, before n2's starts at 11.5.
    history = dataclasses.replace(clean_history(), faults=(ISOLATE,))
    assert invariant(check_history(history), "singleton-single-holder").violations == 0


def test_a_singleton_fenced_between_two_samples_ends_at_its_fence() -> None:
    # A run's real case: n1's singleton (no stop line) was last sampled at 9.5 and missed
    # first at 10.5; its node's power was confirmed off at 10.2 and n2's started at 10.4.
    records = (
        ServiceRecord("start", "singleton", "n1", 0.5, 100),
        ServiceRecord("start", "singleton", "n2", 10.4, 200),
        ServiceRecord("stop", "singleton", "n2", 61.0, 200),
    )
    history = dataclasses.replace(
        clean_history(), faults=(ISOLATE,), singleton_records=records, fenced=(("n1", 10.2),)
    )
    assert invariant(check_history(history), "singleton-single-holder").violations == 0
    unfenced = dataclasses.replace(history, fenced=())
    assert invariant(check_history(unfenced), "singleton-single-holder").violations == 1


def test_a_singleton_started_while_the_old_one_still_ran_is_an_overlap() -> None:
    history = dataclasses.replace(
        clean_history(),
        singleton_records=(
            ServiceRecord("start", "singleton", "n1", 0.5, 100),
            ServiceRecord("start", "singleton", "n2", 5.0, 200),
            ServiceRecord("stop", "singleton", "n1", 8.0, 100),
        ),
    )
    found = invariant(check_history(history), "singleton-single-holder")
    assert found.violations == 1
    assert "n1 (pid 100) ran 0.500-8.000 while n2 (pid 200) started at 5.000" in found.examples[0]


def test_an_acknowledged_write_missing_from_the_final_read_is_lost() -> None:
    history = clean_history()
    last = final_read(history, "k1")
    stale = dataclasses.replace(last, value="k1-v57")
    history = dataclasses.replace(
        history, operations=tuple(stale if op == last else op for op in history.operations)
    )
    found = invariant(check_history(history), "session-no-lost-write")
    # v58 and v59 were acknowledged after v57 returned: both lost.
    assert found.violations == 2
    assert "'k1-v58'" in found.examples[0]


def test_a_final_read_that_finds_nothing_loses_every_acknowledged_write() -> None:
    history = clean_history()
    last = final_read(history, "k2")
    empty = dataclasses.replace(last, value=None)
    history = dataclasses.replace(
        history, operations=tuple(empty if op == last else op for op in history.operations)
    )
    assert invariant(check_history(history), "session-no-lost-write").violations == 60


def test_a_missing_final_read_is_a_violation_with_its_reason() -> None:
    history = clean_history()
    # No read of k1 after its last write returned (59.2), so nothing shows it survived.
    history = dataclasses.replace(
        history,
        operations=tuple(
            op
            for op in history.operations
            if not (op.kind == "session-read" and op.key == "k1" and op.start >= 59.2)
        ),
    )
    found = invariant(check_history(history), "session-no-lost-write")
    assert found.violations == 1
    assert "k1: no final read after the last heal" in found.examples[0]


def test_an_unanswered_write_may_be_the_final_value() -> None:
    history = clean_history()
    unknown = Operation("sessions-3", "session-write", "k1", "k1-late", 60.0, 61.0, "unknown")
    last = final_read(history, "k1")
    history = dataclasses.replace(
        history,
        operations=(
            *(op for op in history.operations if op != last),
            unknown,
            dataclasses.replace(last, value="k1-late"),
        ),
    )
    verdict = check_history(history)
    assert invariant(verdict, "session-no-lost-write").violations == 0
    assert invariant(verdict, "session-linearizable").violations == 0


def test_a_read_of_an_overwritten_value_is_not_linearizable() -> None:
    history = clean_history()
    stale = Operation("sessions-9", "session-read", "k2", "k2-v3", 20.5, 20.6, "ok")
    history = dataclasses.replace(history, operations=(*history.operations, stale))
    found = invariant(check_history(history), "session-linearizable")
    assert found.violations == 1
    assert found.examples[0].startswith("key k2:")


def test_a_refused_write_is_not_part_of_the_register_history() -> None:
    refused = Operation("sessions-9", "session-write", "k1", "never", 20.5, 20.6, "fail")
    history = clean_history()
    history = dataclasses.replace(history, operations=(*history.operations, refused))
    assert invariant(check_history(history), "session-linearizable").violations == 0


def test_workloads_that_do_not_recover_within_the_bound_are_a_violation() -> None:
    history = clean_history()
    # HTTP fails from the crash at 10 until 31: 21 s, above fast's 20 s.
    ops = http_failing(history, 10.0, 31.0)
    verdict = check_history(dataclasses.replace(history, operations=ops))
    found = invariant(verdict, "recovery-within-bound")
    assert found.violations == 1
    assert found.examples[0].startswith("crash of n1 at 10.000: the workloads recovered after")
    crash = next(o for o in verdict.faults if o.fault == CRASH)
    assert crash.recovered_after == pytest.approx(21.1)


def test_a_fault_followed_by_another_is_held_to_the_bound_by_the_later_one() -> None:
    history = clean_history()
    # A second crash 5 s after the first: the first's recovery is the second's to check.
    ops = http_failing(history, 10.0, 31.0)
    second = Fault("crash", ("n3",), 15.0, 33.0, group=3)
    history = dataclasses.replace(history, operations=ops, faults=(CRASH, second, ISOLATE))
    found = invariant(check_history(history), "recovery-within-bound")
    assert found.violations == 0  # 31 - 15 = 16 s after the later crash


def test_recovery_waits_for_a_majority_when_two_of_three_nodes_are_down() -> None:
    history = clean_history()
    # n3 crashes too, until 31: without a majority nothing serves until its revive.
    ops = http_failing(history, 10.0, 31.0)
    second = Fault("crash", ("n3",), 12.0, 31.0, group=3)
    history = dataclasses.replace(history, operations=ops, faults=(CRASH, second, ISOLATE))
    verdict = check_history(history)
    assert invariant(verdict, "recovery-within-bound").violations == 0
    later = next(o for o in verdict.faults if o.fault == second)
    # Counted from n1's revive at 30, when two nodes are up again: HTTP answered at 31.1.
    assert later.recovered_after == pytest.approx(1.1)


def test_each_fault_reports_its_outage_and_recovery() -> None:
    verdict = check_history(clean_history())
    crash, isolate = verdict.faults
    assert crash.fault == CRASH
    # The last HTTP success before the crash ended at 9.6, the next at 12.1.
    assert crash.outages["http-get"] == pytest.approx(2.5)
    assert crash.recovered_after == pytest.approx(2.1)
    assert isolate.outages["http-get"] == pytest.approx(0.5)
    assert isolate.elections == 0
    # n2, isolated from 35, is in the crash's heal window (30-35) with its own climbing
    # term: a node another fault cut off does not speak for the majority.
    assert crash.elections == 0


def test_a_term_rise_after_a_heal_is_an_election_caused_by_it() -> None:
    history = clean_history()
    leaders = tuple(
        dataclasses.replace(s, term=3) if s.node == "n3" and s.time > 46.0 else s
        for s in history.leaders
    )
    verdict = check_history(dataclasses.replace(history, leaders=leaders))
    found = invariant(verdict, "no-election-on-heal")
    assert found.violations == 1
    assert "heal of isolate of n2 at 45.000: the term rose by 1" in found.examples[0]
    assert verdict.faults[1].elections == 1


def test_a_term_rise_after_the_next_fault_began_is_not_the_heal_s() -> None:
    # The 1-hour run: a partition of the controller 3 s after a heal, its election counted
    # against the heal. Here the Raft leader n1 is killed at 45.8, before n3's term rises.
    history = clean_history()
    leaders = tuple(
        dataclasses.replace(s, term=3) if s.node == "n3" and s.time > 46.0 else s
        for s in history.leaders
    )
    kill = Fault("kill-raft-leader", ("n1",), 45.8, 46.5, group=3)
    verdict = check_history(
        dataclasses.replace(history, leaders=leaders, faults=(*history.faults, kill))
    )
    assert invariant(verdict, "no-election-on-heal").violations == 0
    assert verdict.faults[1].elections == 0


def test_an_election_owed_to_a_majority_that_lost_its_leader_is_allowed() -> None:
    history = clean_history()
    leaders = (
        *(
            dataclasses.replace(s, term=3) if s.node == "n3" and s.time > 46.0 else s
            for s in history.leaders
        ),
        LeaderSample("n3", 40.5, None, 2),
    )
    found = invariant(
        check_history(dataclasses.replace(history, leaders=leaders)), "no-election-on-heal"
    )
    assert found.violations == 0


def test_a_fault_never_undone_leaves_no_final_read_and_no_heal_to_measure() -> None:
    open_isolation = Fault("isolate", ("n2",), 50.0, float("inf"), group=3)
    history = dataclasses.replace(clean_history(), faults=(CRASH, ISOLATE, open_isolation))
    verdict = check_history(history)
    never = next(o for o in verdict.faults if o.fault == open_isolation)
    assert never.recovered_after is None
    assert never.elections is None
    assert invariant(verdict, "recovery-within-bound").violations == 0  # nothing to hold it to
    lost = invariant(verdict, "session-no-lost-write")
    assert lost.violations == 2  # one per key: no read after a heal that never came
    assert "no final read after the last heal (inf)" in lost.examples[0]


def test_a_killed_session_primary_leaves_its_node_a_voter_for_the_majority_count() -> None:
    # n2's store is killed while n3 is isolated: n1 and n2 still form a majority, so the
    # cluster must mend from the kill itself; a crash of n2 instead would wait for the heal.
    isolate = Fault("isolate", ("n3",), 20.0, 25.0, group=3)
    kill = Fault("kill-session-primary", ("n2",), 21.0, 22.0, group=4)
    crash = Fault("crash", ("n2",), 21.0, 40.0, group=5)
    history = dataclasses.replace(clean_history(), faults=(isolate, kill, crash))
    assert recovery_from(dataclasses.replace(history, faults=(isolate, kill)), kill) == 21.0
    assert recovery_from(history, crash) == 25.0
