"""The live stream of the API: one watch of the cluster, fanned out to every subscriber.

However many dashboards are open, the node runs one watch of the event log and computes the
status report at most once per `STATUS_EVERY` after a change, then hands the same bytes to
every subscriber (no polling storm, no watch per client). Status reads share it too
(`Hub.status`): a report at most `STATUS_MAX_AGE` old is served as it is, and concurrent
reads wait for one computation; the agent's event loop, which also renews the member lease,
thus computes about one report per second however many clients read.

A subscriber has a bounded queue: one that cannot keep up is dropped (its stream ends; the
dashboard reconnects with ``Last-Event-ID`` and gets what it missed from the log).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from hakeeper.errors import CoordError
from hakeeper.model.events import to_dict
from hakeeper.runtime.node_view import NodeView
from hakeeper.runtime.status_report import collect_status

log = logging.getLogger(__name__)

#: Messages a subscriber may have waiting before it is dropped.
QUEUE_BOUND = 256
#: At most one status document per this many seconds, however often the records change.
STATUS_EVERY = 0.5
RETRY_AFTER_ERROR = 1.0
STATUS_TIMEOUT = 15.0
#: A status read may be served a report this old (seconds); changes are pushed by the stream.
STATUS_MAX_AGE = 1.0


@dataclass(frozen=True, slots=True)
class Message:
    """One server-sent event, already encoded; an event of the log carries its revision."""

    data: bytes
    revision: int | None = None


def sse(kind: str, payload: object, event_id: int | None = None) -> Message:
    lines = [f"event: {kind}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(payload, separators=(",", ":")))
    return Message(("\n".join(lines) + "\n\n").encode(), event_id)


class Hub:
    def __init__(self, view: NodeView, max_subscribers: int) -> None:
        self._view = view
        self._max = max_subscribers
        self._queues: set[asyncio.Queue[Message | None]] = set()
        self._changed = asyncio.Event()
        self._report: tuple[float, dict[str, Any]] | None = None
        self._computing: asyncio.Future[dict[str, Any]] | None = None

    async def status(self, max_age: float = STATUS_MAX_AGE) -> dict[str, Any]:
        """The status document, at most ``max_age`` seconds old; one computation at a time."""
        now = time.monotonic()
        if self._report is not None and now - self._report[0] <= max_age:
            return self._report[1]
        if self._computing is None:
            self._computing = asyncio.ensure_future(self._compute())
        computing = self._computing
        try:
            return await asyncio.shield(computing)
        finally:
            if computing.done() and self._computing is computing:
                self._computing = None

    async def _compute(self) -> dict[str, Any]:
        began = time.monotonic()
        async with asyncio.timeout(STATUS_TIMEOUT):
            report = await collect_status(self._view.store, self._view.spec(), time.time())
        document = report.to_dict()
        self._report = (began, document)
        return document

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    def full(self) -> bool:
        return len(self._queues) >= self._max

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Message | None]]:
        queue: asyncio.Queue[Message | None] = asyncio.Queue(QUEUE_BOUND)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    def close(self) -> None:
        """End every stream (the server is stopping)."""
        for queue in list(self._queues):
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
            queue.put_nowait(None)
        self._queues.clear()

    def _publish(self, message: Message) -> None:
        for queue in list(self._queues):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                # Too slow: end its stream (None) rather than buffer without bound.
                self._queues.discard(queue)
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(None)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._follow_events())
            tasks.create_task(self._follow_changes())
            tasks.create_task(self._publish_status())

    async def _follow_events(self) -> None:
        events = self._view.store.event_log(self._view.node)
        start: int | None = None
        while True:
            try:
                if start is None:
                    start = await events.revision() + 1
                async with contextlib.aclosing(events.follow(start)) as changes:
                    async for revision, event in changes:
                        start = revision + 1
                        if event is not None:
                            self._publish(sse("event", to_dict(event), revision))
            except CoordError as exc:
                log.warning("event=api_stream_watch_failed error=%r", str(exc))
                start = None  # from now: a gap is filled by the client's Last-Event-ID
                await asyncio.sleep(RETRY_AFTER_ERROR)

    async def _follow_changes(self) -> None:
        while True:
            try:
                async with contextlib.aclosing(self._view.store.changes()) as changes:
                    async for _ in changes:
                        self._changed.set()
            except CoordError as exc:
                log.warning("event=api_status_watch_failed error=%r", str(exc))
                await asyncio.sleep(RETRY_AFTER_ERROR)

    async def _publish_status(self) -> None:
        while True:
            try:
                async with asyncio.timeout(max(STATUS_EVERY * 10, 5.0)):
                    await self._changed.wait()
            except TimeoutError:
                pass  # also now and then without a change: quorum and leases age
            self._changed.clear()
            if self._queues:
                try:
                    document = await self.status(max_age=0.0)
                except (CoordError, TimeoutError) as exc:
                    log.warning("event=api_status_failed error=%r", str(exc))
                else:
                    self._publish(sse("status", document))
            await asyncio.sleep(STATUS_EVERY)
