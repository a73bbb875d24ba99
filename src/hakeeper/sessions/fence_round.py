"""Fencing the store nodes with a new epoch before a promotion: every node at once, done as
soon as a majority, the node being promoted among them, has answered.

Why a majority is enough: every acknowledged write is on a majority, so a fenced majority
holds each of them on at least one member (the most up-to-date of them has all), and the nodes
not fenced are a minority, so an old primary cannot commit with them. Waiting for the rest
would only add time: a powered-off host does not refuse a connection, it leaves it unanswered
until the control timeout (2 s), which a sequential round paid in full for every dead node.
The nodes not reached learn the new epoch from the new primary's hello.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from hakeeper.errors import SessionStoreError
from hakeeper.sessions.position import Position


async def fence_majority(
    addresses: Sequence[str], me: str, fence: Callable[[str], Awaitable[Position]]
) -> dict[str, Position]:
    """The positions of the nodes that took the fence: all of them, or fewer once a majority
    including ``me`` answered (the calls still pending are cancelled). Each ``fence`` call
    bounds its own time; a node that fails it (``SessionStoreError``) is left out."""
    need = len(addresses) // 2 + 1
    positions: dict[str, Position] = {}

    async def one(address: str) -> None:
        try:
            positions[address] = await fence(address)
        except SessionStoreError:
            return

    tasks = [asyncio.create_task(one(address)) for address in addresses]
    pending = set(tasks)
    try:
        while pending and not (me in positions and len(positions) >= need):
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    # Anything but a refused fence is a bug to see, not a node to skip: raised here.
    await asyncio.gather(*(task for task in tasks if not task.cancelled()))
    return dict(positions)
