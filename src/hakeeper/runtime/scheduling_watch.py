"""Say when this node's agent was not scheduled for a while, as Corosync does.

A member whose event loop does not run renews nothing, and the others see it silent: past
``suspect_after`` (with fencing on suspicion) it is fenced although it was alive, past the
member TTL its lease expires. Corosync logs "main process was not scheduled for X ms" for the
same reason. This watch sleeps half a renewal interval at a time and logs, when it woke a
whole renewal interval late, by how much and what silence the others tolerate, so a fence of
a live node can be matched with the stall behind it (a starved CPU, a blocked loop, a
paused VM) and the tolerance raised where the host needs it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from hakeeper.model.cluster import ClusterSpec
from hakeeper.runtime.membership import renew_every

log = logging.getLogger(__name__)


class SchedulingWatch:
    def __init__(
        self,
        node: str,
        spec: Callable[[], ClusterSpec],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._node = node
        self._spec = spec
        self._clock = clock
        self._sleep = sleep

    async def run(self) -> None:
        while True:
            await self.look()

    async def look(self) -> float:
        """One sleep; how late it woke (seconds), logged when a renewal's worth or more."""
        spec = self._spec()
        every = renew_every(spec)
        started = self._clock()
        await self._sleep(every / 2)
        late = max(0.0, self._clock() - started - every / 2)
        if late >= every:
            after = spec.suspect_after if spec.options.fencing else None
            tolerated, by = (
                (after, "suspect_after") if after is not None
                else (spec.timing.member_ttl, "member_ttl")
            )  # fmt: skip
            log.warning(
                "event=not_scheduled node=%s late_ms=%.0f tolerated_ms=%.0f by=%s",
                self._node, late * 1000, tolerated * 1000, by,
            )  # fmt: skip
        return late
