"""fence_majority: the promotion's fence round, with fake nodes (no sockets)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from hakeeper.errors import SessionStoreError
from hakeeper.sessions.fence_round import fence_majority
from hakeeper.sessions.position import Position, Role

NODES = ["a:1", "b:1", "c:1"]


def position(seq: int) -> Position:
    return Position(log_epoch=1, seq=seq, seen_epoch=2, role=Role.REPLICA)


def fake_nodes(
    delays: dict[str, float], refused: frozenset[str] = frozenset()
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
        return position(NODES.index(address))

    return in_flight, fence


async def test_a_silent_node_does_not_hold_the_round_once_a_majority_answered() -> None:
    # A powered-off host leaves the connection unanswered until the client's timeout.
    _, fence = fake_nodes({"c:1": 60.0})
    started = time.monotonic()
    positions = await fence_majority(NODES, "a:1", fence)
    assert time.monotonic() - started < 5.0
    assert positions == {"a:1": position(0), "b:1": position(1)}


async def test_every_node_is_asked_at_once() -> None:
    in_flight, fence = fake_nodes({"a:1": 0.2, "b:1": 0.2, "c:1": 0.2})
    positions = await fence_majority(NODES, "a:1", fence)
    assert in_flight == [1, 2, 3]  # the third started before the first finished
    assert "a:1" in positions
    assert len(positions) >= 2


async def test_the_round_waits_for_the_node_being_promoted() -> None:
    _, fence = fake_nodes({"a:1": 0.1})
    positions = await fence_majority(NODES, "a:1", fence)
    assert positions == {"a:1": position(0), "b:1": position(1), "c:1": position(2)}


async def test_refused_nodes_are_left_out_and_a_minority_is_returned_as_it_is() -> None:
    _, fence = fake_nodes({}, refused=frozenset({"b:1", "c:1"}))
    assert await fence_majority(NODES, "a:1", fence) == {"a:1": position(0)}


async def test_an_unexpected_error_is_raised_not_counted_as_a_refusal() -> None:
    async def fence(address: str) -> Position:
        raise ValueError("bug")

    with pytest.raises(ValueError, match="bug"):
        await fence_majority(NODES, "a:1", fence)
