"""One fence of a node at a time per process: a second request joins the one in flight.

On a controller, the suspicion watch and the controller's own fence-before-recover may ask
to power off the same node a moment apart (the suspicion starts first; the node's lease then
expires and the controller's plan fences it too). Two runs of the device cost the second
caller the whole device time again, and send a real PDU or BMC two overlapping commands.
Pacemaker's fencer merges identical requests the same way ("merging fencing action ...
with identical request").

Joining is safe: a fence that completes after the joiner asked has put the node in the
asked state after that moment, which is all the joiner needs. Only the same node and action
join. A fence, once started, runs to its end even if every caller is cancelled
(stopping a fence agent half-way leaves the device's state unknown); this table owns it until
then, and its result goes to whoever still waits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from hakeeper.fencing.device import FenceAction, FenceOutcome

log = logging.getLogger(__name__)

Key = tuple[str, FenceAction]  # (node, action)


class InFlightFences:
    def __init__(self) -> None:
        self._runs: dict[Key, asyncio.Task[FenceOutcome]] = {}

    async def run(self, key: Key, start: Callable[[], Awaitable[FenceOutcome]]) -> FenceOutcome:
        """The outcome of fencing ``key``: the run in flight, or one ``start`` begins."""
        task = self._runs.get(key)
        if task is None:
            task = asyncio.ensure_future(start())
            self._runs[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(task)

    def _forget(self, key: Key, done: asyncio.Task[FenceOutcome]) -> None:
        if self._runs.get(key) is done:
            del self._runs[key]
        # Every waiter got this already; said here too for a run whose callers all left.
        if not done.cancelled() and (error := done.exception()) is not None:
            log.warning("event=fence_run_failed node=%s action=%s error=%r", *key, repr(error))
