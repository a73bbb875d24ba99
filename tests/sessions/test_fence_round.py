"""fence_every and vouching: the promotion's fence round, with fake nodes (no sockets)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from hakeeper.errors import SessionStoreError
from hakeeper.sessions.fence_round import fence_every, vouching
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
    positions = await fence_every(NODES, fence)
    assert most_up_to_date(positions) == "b:1"


async def test_every_node_is_asked_at_once() -> None:
    in_flight, fence = fake_nodes({"a:1": 0.2, "b:1": 0.2, "c:1": 0.2})
    positions = await fence_every(NODES, fence)
    assert in_flight == [1, 2, 3]  # the third started before the first finished
    assert positions == {"a:1": position(0), "b:1": position(1), "c:1": position(2)}


async def test_refused_nodes_are_left_out_and_a_minority_is_returned_as_it_is() -> None:
    _, fence = fake_nodes({}, refused=frozenset({"b:1", "c:1"}))
    assert await fence_every(NODES, fence) == {"a:1": position(0)}


async def test_an_unexpected_error_is_raised_not_counted_as_a_refusal() -> None:
    async def fence(address: str) -> Position:
        raise ValueError("bug")

    with pytest.raises(ExceptionGroup) as raised:
        await fence_every(NODES, fence)
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
