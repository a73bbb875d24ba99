"""The promotion scores this node's in-process agents ask for, written to the cluster store
in the background.

A monitor hands its score here and goes on: it must not wait on the cluster store, where a
write from a node cut off from the majority waits out its timeout, and a late monitor is a
failed one. The newest score per resource wins; writes go one at a time, each bounded by
`WRITE_TIMEOUT`, and a score that could not be written is tried again after
`RETRY_INTERVAL` while it is still wanted. An unchanged score is not written again.
`clear` (the instance stopped here) waits for a write in flight before it deletes the
score, so a late write cannot bring it back.
"""

from __future__ import annotations

import asyncio
import logging

from hakeeper.errors import CoordError
from hakeeper.model.attributes import NodeAttribute, promotion_attribute
from hakeeper.runtime.store import ClusterStore

log = logging.getLogger(__name__)

WRITE_TIMEOUT = 2.0
RETRY_INTERVAL = 1.0


class ScoreWriter:
    """``master-<resource>`` of one node, as its agents last asked (lifetime ``reboot``)."""

    def __init__(self, node: str, store: ClusterStore) -> None:
        self._node = node
        self._store = store
        self._wanted: dict[str, int] = {}
        self._written: dict[str, int] = {}
        self._writing = asyncio.Lock()
        self._changed = asyncio.Event()

    def want(self, resource: str, score: int) -> None:
        self._wanted[resource] = score
        if self._written.get(resource) != score:
            self._changed.set()

    async def clear(self, resource: str) -> None:
        """Forget ``resource``'s score here and delete it from the cluster (raises
        `CoordError` as the store does)."""
        self._wanted.pop(resource, None)
        async with self._writing:
            self._written.pop(resource, None)
            await self._store.delete_attribute(self._node, promotion_attribute(resource), "reboot")

    async def run(self) -> None:
        """Write what is wanted, until cancelled (the executor's run owns this task)."""
        while True:
            await self._changed.wait()
            self._changed.clear()
            unwritten = False
            for resource in list(self._wanted):
                unwritten |= not await self._write(resource)
            if unwritten:
                await asyncio.sleep(RETRY_INTERVAL)
                self._changed.set()

    async def _write(self, resource: str) -> bool:
        """Whether ``resource``'s wanted score is in the cluster now (or no longer wanted)."""
        async with self._writing:
            score = self._wanted.get(resource)
            if score is None or self._written.get(resource) == score:
                return True
            attribute = NodeAttribute(self._node, promotion_attribute(resource), str(score))
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 a wait_for cancelled just as
                # its write failed raises the write's error and the cancellation is lost.
                async with asyncio.timeout(WRITE_TIMEOUT):
                    await self._store.set_attribute(attribute)
            except (CoordError, TimeoutError) as exc:
                log.warning(
                    "event=promotion_score_unwritten resource=%s score=%d error=%r",
                    resource,
                    score,
                    str(exc) or type(exc).__name__,
                )
                return False
            self._written[resource] = score
            log.info("event=promotion_score resource=%s score=%d", resource, score)
            return True
