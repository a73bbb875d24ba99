"""The promotion's fence round and the rule it applies (also as a promotion score), with fake
nodes (no sockets)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from hakeeper.errors import SessionStoreError
from hakeeper.sessions.fence_round import (
    SCORE_NEWEST,
    SCORE_NO_LOG,
    SCORE_OLDER_LOG,
    SCORE_REFUSED,
    ask_every,
    forgotten,
    promotion_score,
    refusal,
    vouching,
)
from hakeeper.sessions.position import Position, Role, most_up_to_date

NODES = ["a:1", "b:1", "c:1"]


def position(seq: int) -> Position:
    return Position(log_epoch=1, seq=seq, seen_epoch=2, role=Role.REPLICA)


def fake_nodes(
    delays: dict[str, float],
    refused: frozenset[str] = frozenset(),
    seqs: dict[str, int] | None = None,
) -> tuple[list[int], Callable[[str], Awaitable[Position]]]:
    """The fence of fake nodes, and how many calls were in flight as each one started."""
    in_flight: list[int] = []
    running = 0

    async def fence(address: str) -> Position:
        nonlocal running
        running += 1
        in_flight.append(running)
        try:
            await asyncio.sleep(delays.get(address, 0.0))
        finally:
            running -= 1
        if address in refused:
            raise SessionStoreError(f"session store {address} unreachable")
        return position((seqs or {}).get(address, NODES.index(address)))

    return in_flight, fence


async def test_a_slow_node_holding_the_newest_write_is_waited_for() -> None:
    # c restarted empty (seq 0) and answers first; only slow b holds the last acknowledged
    # write (seq 9). Stopping at the first majority {a, c} would promote without it.
    _, fence = fake_nodes({"b:1": 0.3}, seqs={"a:1": 5, "b:1": 9, "c:1": 0})
    positions = await ask_every(NODES, fence)
    assert most_up_to_date(positions) == "b:1"


async def test_every_node_is_asked_at_once() -> None:
    in_flight, fence = fake_nodes({"a:1": 0.2, "b:1": 0.2, "c:1": 0.2})
    positions = await ask_every(NODES, fence)
    assert in_flight == [1, 2, 3]  # the third started before the first finished
    assert positions == {"a:1": position(0), "b:1": position(1), "c:1": position(2)}


async def test_refused_nodes_are_left_out_and_a_minority_is_returned_as_it_is() -> None:
    _, fence = fake_nodes({}, refused=frozenset({"b:1", "c:1"}))
    assert await ask_every(NODES, fence) == {"a:1": position(0)}


async def test_an_unexpected_error_is_raised_not_counted_as_a_refusal() -> None:
    async def fence(address: str) -> Position:
        raise ValueError("bug")

    with pytest.raises(ExceptionGroup) as raised:
        await ask_every(NODES, fence)
    assert raised.group_contains(ValueError, match="bug")


def test_a_node_restarted_empty_does_not_vouch_while_another_holds_a_log() -> None:
    # a kept its log; c restarted empty; b, which may alone hold the last write, is away.
    restarted = Position(log_epoch=0, seq=0, seen_epoch=2, role=Role.REPLICA)
    assert vouching({"a:1": position(5), "c:1": restarted}, 3) == ["a:1"]


def test_every_node_vouches_when_every_node_answered() -> None:
    # Nobody is left to wait for: what the answers lack is gone whoever is waited for.
    restarted = Position(log_epoch=0, seq=0, seen_epoch=2, role=Role.REPLICA)
    both = {"a:1": position(5), "b:1": restarted, "c:1": restarted}
    assert vouching(both, 3) == ["a:1", "b:1", "c:1"]


def test_every_node_vouches_when_none_holds_a_log() -> None:
    empty = Position(log_epoch=0, seq=0, seen_epoch=0, role=Role.REPLICA)
    assert vouching({"a:1": empty, "b:1": empty}, 3) == ["a:1", "b:1"]


EMPTY = Position(log_epoch=0, seq=0, seen_epoch=2, role=Role.REPLICA)


def test_a_promotion_is_refused_without_a_majority_answering() -> None:
    assert "only 1 of 3 store nodes answered" in refusal("a:1", {"a:1": position(5)}, 3)


def test_a_promotion_is_refused_when_an_empty_node_makes_up_the_majority() -> None:
    # The fourth 1-hour run: the keeper and a node restarted empty answer, the third is away.
    why = refusal("a:1", {"a:1": position(5), "c:1": EMPTY}, 3)
    assert "c:1 restarted empty" in why


def test_a_promotion_may_go_ahead_when_every_node_answered() -> None:
    assert refusal("b:1", {"a:1": position(5), "b:1": EMPTY, "c:1": EMPTY}, 3) == ""


def test_a_node_whose_promotion_would_be_refused_scores_minus_one() -> None:
    assert promotion_score("a:1", {"a:1": position(5), "c:1": EMPTY}, 3) == SCORE_REFUSED


def test_the_keeper_of_the_newest_log_scores_above_nodes_restarted_empty() -> None:
    # The same nodes once the third answers (empty too): the keeper is the one to promote.
    answers = {"a:1": position(5), "b:1": EMPTY, "c:1": EMPTY}
    assert promotion_score("a:1", answers, 3) == SCORE_NEWEST
    assert promotion_score("b:1", answers, 3) == SCORE_NO_LOG


def test_a_log_of_an_older_epoch_scores_between() -> None:
    older = Position(log_epoch=1, seq=99, seen_epoch=3, role=Role.REPLICA)
    newer = Position(log_epoch=3, seq=1, seen_epoch=3, role=Role.REPLICA)
    assert promotion_score("a:1", {"a:1": older, "b:1": newer}, 3) == SCORE_OLDER_LOG


def test_replicas_a_few_writes_apart_score_the_same() -> None:
    # A class per log epoch, not a rank by seq: the score does not change with every write.
    answers = {"a:1": position(5), "b:1": position(9)}
    assert promotion_score("a:1", answers, 3) == promotion_score("b:1", answers, 3)


def test_the_primary_scores_the_newest_on_its_own_answer() -> None:
    primary = Position(log_epoch=2, seq=5, seen_epoch=2, role=Role.PRIMARY)
    assert promotion_score("a:1", {"a:1": primary}, 3) == SCORE_NEWEST


def test_a_first_start_scores_every_node_the_newest() -> None:
    fresh = Position(log_epoch=0, seq=0, seen_epoch=0, role=Role.REPLICA)
    answers = {"a:1": fresh, "b:1": fresh}
    assert promotion_score("a:1", answers, 3) == SCORE_NEWEST


def test_a_promotion_without_a_logged_majority_names_the_nodes_restarted_empty() -> None:
    # The seventh 1-hour run: the survivor holds a log, the other two came back empty.
    answers = {"a:1": position(5), "b:1": EMPTY, "c:1": EMPTY}
    assert forgotten(answers, 3) == ["b:1", "c:1"]


def test_nothing_is_forgotten_while_a_majority_holds_a_log() -> None:
    assert forgotten({"a:1": position(5), "b:1": position(5), "c:1": EMPTY}, 3) == []
