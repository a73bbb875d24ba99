"""The single-writer checker of the PAF test, on hand-made timeline histories and writer logs."""

from __future__ import annotations

from benchmarks.paf_lab import Ack, Switch, parse_history, parse_lsn, single_writer_problems

# Timeline 1 left at 0/3000100 for 2 (n2 promoted), 2 left at 0/5000200 for 3 (n1 promoted).
TWO = (Switch(1, 0x3000100),)
THREE = (Switch(1, 0x3000100), Switch(2, 0x5000200))


def ack(i: int, node: str, timeline: int, lsn: int) -> Ack:
    return Ack(i, node, timeline, lsn, started=float(i), acked=i + 0.5)


def test_history_file_lines_parse_into_switches() -> None:
    text = "1\t0/3000100\tno recovery target specified\n\n2\t0/5000200\tno recovery target\n"
    assert parse_history(text) == THREE
    assert parse_lsn("1/A0") == (1 << 32) | 0xA0


def test_one_chain_with_every_commit_before_its_fork_passes() -> None:
    acks = [ack(0, "n1", 1, 0x3000000), ack(1, "n2", 2, 0x5000100), ack(2, "n1", 3, 0x6000000)]
    assert single_writer_problems({2: {TWO}, 3: {THREE}}, acks) == []


def test_a_second_branch_from_the_same_parent_is_a_fork() -> None:
    # n3 promoted too, from timeline 1 at another point: timeline 3's parent is 1, not 2.
    forked = (Switch(1, 0x3000400),)
    problems = single_writer_problems({2: {TWO}, 3: {forked}}, [])
    assert any("not on the chain" in p for p in problems), problems


def test_one_timeline_with_two_histories_is_a_fork() -> None:
    problems = single_writer_problems({2: {TWO, (Switch(1, 0x3000400),)}}, [])
    assert any("2 different histories" in p for p in problems), problems


def test_a_commit_acknowledged_after_its_timeline_forked_fails() -> None:
    # The old primary kept acknowledging on timeline 1 after timeline 2 forked off it.
    acks = [ack(0, "n1", 1, 0x3000000), ack(1, "n2", 2, 0x3000200), ack(2, "n1", 1, 0x3000300)]
    problems = single_writer_problems({2: {TWO}}, acks)
    assert any("after the fork" in p for p in problems), problems
    assert any("after timeline 2" in p for p in problems), problems


def test_two_nodes_acknowledging_on_one_timeline_fails() -> None:
    acks = [ack(0, "n1", 2, 0x3000200), ack(1, "n3", 2, 0x3000300)]
    problems = single_writer_problems({2: {TWO}}, acks)
    assert any("which n1 wrote" in p for p in problems), problems


def test_a_commit_on_a_timeline_without_history_fails() -> None:
    problems = single_writer_problems({2: {TWO}}, [ack(0, "n3", 4, 0x9000000)])
    assert any("off [1, 2]" in p for p in problems), problems
