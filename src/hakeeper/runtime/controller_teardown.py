"""Ending a controller term: its tasks are cancelled and waited for, within a deadline.

A controller stops when deposed, when the engine fails or when this node's membership lapses;
then every task it owns is cancelled. One that does not finish within `STOP_TIMEOUT` would
hold the whole node's campaign with it, while the controller key, leased by a member that
still renews, keeps every other node from campaigning: no controller anywhere, for as long as
it hangs (the 1-hour nemesis run lost its last minutes so). Such tasks are logged with their
stacks and the term is resigned (`ControllerElection.resign`): the next campaign, this node's
too, starts a new term, and a late write of the stuck tasks fails its term guard.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Collection
from typing import Any

from hakeeper.errors import CoordError
from hakeeper.runtime.election import ControllerElection

log = logging.getLogger(__name__)

#: How long a cancelled controller task may take to finish (normally milliseconds).
STOP_TIMEOUT = 10.0

Tasks = Collection[asyncio.Task[Any]]


async def cancel_within(tasks: Tasks, timeout: float) -> set[asyncio.Task[Any]]:
    """Cancel ``tasks`` and wait up to ``timeout`` for them; return those still running."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return set()
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    return pending


async def resign_stuck_term(
    election: ControllerElection, term: int, stuck: Tasks, *, pause: float, timeout: float
) -> None:
    """Log what did not stop, then end ``term`` (retried every ``pause`` until the engine
    answers: campaigning again under the same term would run two controllers in it)."""
    for task in stuck:
        log.error(
            "event=controller_stop_stuck task=%s term=%d waited_s=%g stack=%r",
            task.get_name(), term, STOP_TIMEOUT, _stack(task),
        )  # fmt: skip
    while True:
        try:
            async with asyncio.timeout(timeout):
                ended = await election.resign(term)
        except (CoordError, TimeoutError) as exc:
            log.warning("event=controller_resign_failed term=%d error=%r", term, str(exc))
            await asyncio.sleep(pause)
            continue
        log.warning("event=controller_resigned term=%d deleted=%s", term, ended)
        return


def _stack(task: asyncio.Task[Any]) -> str:
    text = io.StringIO()
    task.print_stack(limit=12, file=text)
    return text.getvalue()
