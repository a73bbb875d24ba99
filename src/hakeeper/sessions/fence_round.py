"""Fencing the store nodes with a new epoch before a promotion: every node at once, and every
answer (or failure) waited for, each call bounded by its own control timeout.

Why not stop at the first majority: a majority holds every acknowledged write only while its
members keep their data, and a store node is in memory. One restarted since (after its
process was killed) answers the fence with an empty log and counts towards a majority that
may then miss a write which only a slower node still holds: the nemesis saw exactly that, an
acknowledged write lost when the killed primary's restarted store answered first. The nodes
that answer, all of them, are searched for the most up-to-date. Asking them together keeps
the round to one control timeout, where a sequential round paid it for every dead node.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from hakeeper.errors import SessionStoreError
from hakeeper.sessions.position import Position


async def fence_every(
    addresses: Sequence[str], fence: Callable[[str], Awaitable[Position]]
) -> dict[str, Position]:
    """The positions of the nodes that took the fence; a node that failed it
    (``SessionStoreError``: refused, unreachable, timed out) is left out. Anything else a
    ``fence`` call raises is a bug, raised here."""
    positions: dict[str, Position] = {}

    async def one(address: str) -> None:
        try:
            positions[address] = await fence(address)
        except SessionStoreError:
            return

    async with asyncio.TaskGroup() as tasks:
        for address in addresses:
            tasks.create_task(one(address))
    return positions
