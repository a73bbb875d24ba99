"""Fencing the store nodes with a new epoch before a promotion: every node at once, and every
answer (or failure) waited for, each call bounded by its own control timeout.

Why not stop at the first majority: a majority holds every acknowledged write only while its
members keep their data, and a store node is in memory. One restarted since (after its
process was killed) answers the fence with an empty log and counts towards a majority that
may then miss a write which only a slower node still holds: the nemesis saw exactly that, an
acknowledged write lost when the killed primary's restarted store answered first. The nodes
that answer, all of them, are searched for the most up-to-date. Asking them together keeps
the round to one control timeout, where a sequential round paid it for every dead node.

Waiting for everyone is not enough when the node holding a write is the one that does not
answer: then the restarted node's empty answer still made up the majority. `vouching` says
which answers may count towards it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence

from hakeeper.errors import SessionStoreError
from hakeeper.sessions.position import Position


def vouching(positions: Mapping[str, Position], nodes: int) -> list[str]:
    """The nodes whose answers count towards the promotion's majority (of ``nodes``, the
    store's size): those holding a log of some epoch. A node that holds none (``log_epoch``
    0: its store started empty and has not caught up from any primary since) has forgotten
    whatever it acknowledged before its restart, so it cannot vouch that the others hold
    every acknowledged write.

    Every answer counts when none holds a log (the store has never had a primary that a
    node caught up from: a first start, or every answering node restarted), and when every
    node answered: then no node is left to wait for, and what the answers lack is gone
    whoever is waited for (a majority of an in-memory store restarted).
    """
    holding = [name for name, p in positions.items() if p.log_epoch > 0]
    if not holding or len(positions) >= nodes:
        return list(positions)
    return holding


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
