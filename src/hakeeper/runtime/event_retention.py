"""Keep the cluster's event log bounded: while a node is controller, it trims the log.

The log lives in the coordination key space, which the embedded Raft holds in memory and
snapshots whole, and which etcd keeps under a size quota: a log that only grows would, after
months, slow every snapshot and finally stop every write. As with Pacemaker's
``pe-input-series-max``, the bound is the operator's: ``[cluster] events_max_age`` (default 400
days: a year's availability window and a month more) and ``events_max_count``.

Trimming is idempotent (deleting keys that are already gone changes nothing), so a deposed
controller that trims once more does no harm; it is not guarded by the controller's term.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from hakeeper.errors import CoordError
from hakeeper.model.cluster import ClusterOptions
from hakeeper.runtime.events_log import EventLog

log = logging.getLogger(__name__)

#: How often the controller trims: events are few per hour, so this bounds the excess.
TRIM_INTERVAL = 3600.0


class EventRetention:
    def __init__(
        self,
        events: EventLog,
        options: Callable[[], ClusterOptions],
        *,
        wall: Callable[[], float] = time.time,
        interval: float = TRIM_INTERVAL,
    ) -> None:
        self._events = events
        self._options = options
        self._wall = wall
        self._interval = interval

    async def run(self) -> None:
        """Trim now and then every interval, until cancelled (the node stops controlling)."""
        while True:
            await self.once()
            await asyncio.sleep(self._interval)

    async def once(self) -> int:
        """Trim once; how many events went (0 when the engine failed: the next run retries)."""
        options = self._options()
        try:
            deleted = await self._events.trim(
                now=self._wall(),
                max_age=options.events_max_age,
                max_count=options.events_max_count,
            )
        except CoordError as exc:
            log.warning("event=events_trim_failed error=%r", str(exc))
            return 0
        if deleted:
            log.info(
                "event=events_trimmed deleted=%d max_age=%g max_count=%d",
                deleted, options.events_max_age, options.events_max_count,
            )  # fmt: skip
        return deleted
