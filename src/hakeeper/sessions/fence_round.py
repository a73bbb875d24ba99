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
which answers may count towards it, and `refusal` whether a promotion may go ahead.

`promotion_score` applies the same rule to plain position reads, so every node's monitor can
say in advance whether a promotion there would be refused (score -1) and which node holds the
newest log (PAF ranks its standbys by LSN the same way): the scheduler then chooses the node
whose promote succeeds. The fourth 1-hour nemesis run lost writes when it chose, "first
eligible", a node restarted empty while the only keeper of the data was held back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence

from hakeeper.errors import SessionStoreError
from hakeeper.sessions.position import Position, Role


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


def refusal(me: str, positions: Mapping[str, Position], nodes: int) -> str:
    """Why a promotion of ``me`` must not go ahead on these answers ('' when it may): a
    majority of the ``nodes`` store nodes must answer, and a majority must vouch."""
    if me not in positions:
        return f"the local store {me} did not answer"
    majority = nodes // 2 + 1
    if len(positions) < majority:
        return (
            f"only {len(positions)} of {nodes} store nodes answered: "
            "cannot fence a majority, so cannot know the latest writes"
        )
    counted = vouching(positions, nodes)
    if len(counted) < majority:
        empty = sorted(set(positions) - set(counted))
        return (
            f"only {len(counted)} of {nodes} store nodes answered with a log "
            f"({', '.join(empty)} restarted empty and cannot vouch for what was acknowledged "
            f"before) and {nodes - len(positions)} did not answer: refused until a node that "
            "kept its log answers"
        )
    return ""


def forgotten(positions: Mapping[str, Position], nodes: int) -> list[str]:
    """The answering nodes restarted empty when a promotion goes ahead on answers where fewer
    than a majority hold a log (every node answered, so `vouching` counts them all): a write
    acknowledged by a majority may have been on those nodes alone, and is lost. Empty when
    a majority holds a log (it holds every acknowledged write) or none does (nothing to
    lose that anyone could know of)."""
    holding = [name for name, p in positions.items() if p.log_epoch > 0]
    if not holding or len(holding) >= nodes // 2 + 1:
        return []
    return sorted(name for name in positions if name not in holding)


#: Promotion scores (Pacemaker's master score, ``crm_master``): the primary and the nodes
#: holding a log of the newest epoch answered; a node with an older log; a node without one
#: (a promote there copies the best log first, so it loses nothing, only time); and
#: "cannot be primary now". Classes rather than a rank by seq: a replica a few writes behind
#: would otherwise change its score, and write it to the cluster, every second.
SCORE_NEWEST = 100
SCORE_OLDER_LOG = 50
SCORE_NO_LOG = 10
SCORE_REFUSED = -1


def promotion_score(me: str, positions: Mapping[str, Position], nodes: int) -> int:
    """What ``me``'s promotion would find, as a score: `SCORE_REFUSED` when `refusal`
    refuses it on these answers."""
    mine = positions.get(me)
    if mine is not None and mine.role is Role.PRIMARY:
        return SCORE_NEWEST
    if mine is None or refusal(me, positions, nodes):
        return SCORE_REFUSED
    if mine.log_epoch == max(p.log_epoch for p in positions.values()):
        return SCORE_NEWEST
    return SCORE_OLDER_LOG if mine.log_epoch > 0 else SCORE_NO_LOG


async def ask_every(
    addresses: Sequence[str], ask: Callable[[str], Awaitable[Position]]
) -> dict[str, Position]:
    """The positions of the nodes that answered ``ask`` (a fence, or a plain read), all
    asked at once; a node that failed (``SessionStoreError``: refused, unreachable, timed
    out) is left out. Anything else an ``ask`` call raises is a bug, raised here."""
    positions: dict[str, Position] = {}

    async def one(address: str) -> None:
        try:
            positions[address] = await ask(address)
        except SessionStoreError:
            return

    async with asyncio.TaskGroup() as tasks:
        for address in addresses:
            tasks.create_task(one(address))
    return positions
