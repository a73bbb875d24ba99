"""Alert delivery: the controller follows the event log and tells each ``[[alerts]]`` entry.

Exactly one node delivers: the controller, for as long as its term holds (the daemon runs an
`AlertDispatcher` beside its `Controller` and cancels it with it). It follows the log from
the *alert cursor* (``alerts/cursor``, written guarded by its term): the revision up to
which every delivery has finished. Each alert has its own worker and bounded queue, so a
slow or dead receiver delays only its own alerts; when its queue is full, the new delivery
is recorded as failed rather than held.

Each delivery's result is itself an event (``alert.delivered`` / ``alert.failed``), never
alerted on.

Guarantee across controller changes: an event appended after the saved cursor is alerted
at least once by the next controller, in revision order per alert. A change repeats only
deliveries that finished or were in flight in the last `CURSOR_INTERVAL` before the old
controller stopped (the cursor is saved at most that often), i.e. at most what the queues
held plus one interval's worth. Events are dropped only when the engine no longer holds them
when the next controller starts (`Compacted`: the embedded Raft keeps the last 20,000
changes), which is logged. A new cluster (no cursor) starts from the present, not from its
history.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from hakeeper.errors import Compacted, CoordError, HakeeperError
from hakeeper.model.alerts import AlertSpec
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.events import AlertDelivered, AlertFailed, Event
from hakeeper.runtime.alert_agents import Outcome, run_agent
from hakeeper.runtime.alert_env import Notice, agent_environment, notice_of, webhook_document
from hakeeper.runtime.events_log import EventLog
from hakeeper.runtime.store import ClusterStore
from hakeeper.runtime.webhooks import post_webhook

log = logging.getLogger(__name__)

#: The cursor is saved at most this often (seconds): the window a controller change repeats.
CURSOR_INTERVAL = 1.0
#: ... and this often while no alert is configured (each save wakes the controller's watch;
#: alerts configured later start at most this far back).
IDLE_CURSOR_INTERVAL = 30.0
RETRY_PAUSE = 1.0
RECORD_TIMEOUT = 10.0


class AlertsDeposed(HakeeperError):
    """The controller term ended: another controller delivers from here on."""


@dataclass(frozen=True, slots=True)
class Delivery:
    alert: AlertSpec
    notice: Notice


def wants(alert: AlertSpec, notice: Notice, spec: ClusterSpec) -> bool:
    """Whether ``alert`` is told about ``notice``: its kinds (none: all), then its resources
    (none: all; a group or clone names its members; events of no resource pass)."""
    if alert.kinds and notice.event.kind not in alert.kinds:
        return False
    rsc = notice.resource
    if not alert.resources or rsc is None:
        return True
    return rsc in alert.resources or spec.top_level(rsc) in alert.resources


class AlertDispatcher:
    def __init__(
        self,
        *,
        node: str,
        term: int,
        spec: Callable[[], ClusterSpec],
        store: ClusterStore,
        events: EventLog,
        backoff: float = 1.0,
        wall: Callable[[], float] = time.time,
        tools_dir: str = "",
    ) -> None:
        self._node = node
        #: The node's Pacemaker tools, first on every alert agent's PATH.
        self._tools_dir = tools_dir
        self._term = term
        self._spec = spec
        self._store = store
        self._events = events
        self._backoff = backoff
        self._wall = wall
        self._queues: dict[str, asyncio.Queue[Delivery]] = {}
        #: Revisions with deliveries not finished yet -> how many.
        self._pending: dict[int, int] = {}
        self._seen = 0
        self._saved = 0
        self._moved = asyncio.Event()

    async def run(self) -> None:
        """Deliver until cancelled or deposed (then it returns); engine trouble is waited out."""
        try:
            async with (
                aiohttp.ClientSession(auto_decompress=False) as session,
                asyncio.TaskGroup() as tasks,
            ):
                tasks.create_task(self._save_cursor(), name="alert-cursor")
                await self._follow(session, tasks)
        except* AlertsDeposed:
            log.info("event=alerts_stopped reason=term_ended term=%d", self._term)

    async def _follow(self, session: aiohttp.ClientSession, tasks: asyncio.TaskGroup) -> None:
        start: int | None = None
        gap = False
        while True:
            try:
                if start is None:
                    start = await self._start()
                if gap:
                    now = await self._events.revision()
                    log.error(
                        "event=alerts_gap from_revision=%d to_revision=%d action=resume_from_now",
                        start + 1, now,
                    )  # fmt: skip
                    self._seen = start = now
                    self._moved.set()
                    gap = False
                async with contextlib.aclosing(self._events.follow(start + 1)) as changes:
                    async for revision, event in changes:
                        self._seen = start = revision
                        if event is not None:
                            self._offer(event, revision, session, tasks)
                        self._moved.set()
            except Compacted:
                # The engine no longer holds what follows the cursor: those events are lost
                # to alerts (logged above); what comes next is not.
                gap = True
            except CoordError as exc:
                log.warning("event=alerts_follow_failed error=%r", str(exc))
                await asyncio.sleep(RETRY_PAUSE)

    async def _start(self) -> int:
        """Where to follow from: the saved cursor; else (a new cluster, or a value that does
        not read) the present, saved at once."""
        try:
            cursor = await self._store.alert_cursor()
        except ValueError as exc:
            log.error("event=alert_cursor_refused error=%r action=start_from_now", str(exc))
            cursor = None
        if cursor is None:
            cursor = await self._events.revision()
            await self._write(cursor)
        self._seen = self._saved = cursor
        log.info("event=alerts_start term=%d from_revision=%d", self._term, cursor + 1)
        return cursor

    def _offer(
        self, event: Event, revision: int, session: aiohttp.ClientSession, tasks: asyncio.TaskGroup
    ) -> None:
        spec = self._spec()
        notice = notice_of(event, revision, spec, self._node)
        if notice is None:
            return
        for alert in spec.alerts:
            if not wants(alert, notice, spec):
                continue
            queue = self._queues.get(alert.id)
            if queue is None:
                queue = self._queues[alert.id] = asyncio.Queue(alert.queue)
                tasks.create_task(self._work(queue, session), name=f"alert-{alert.id}")
            try:
                queue.put_nowait(Delivery(alert, notice))
            except asyncio.QueueFull:
                reason = f"queue full ({queue.maxsize} waiting): {alert.target} is too slow"
                tasks.create_task(self._record(alert, notice, "", Outcome(False, 0, reason)))
                continue
            self._pending[revision] = self._pending.get(revision, 0) + 1

    async def _work(self, queue: asyncio.Queue[Delivery], session: aiohttp.ClientSession) -> None:
        while True:
            delivery = await queue.get()
            try:
                await self._deliver(delivery, session)
            finally:
                revision = delivery.notice.revision
                self._pending[revision] -= 1
                if not self._pending[revision]:
                    del self._pending[revision]
                self._moved.set()

    async def _deliver(self, delivery: Delivery, session: aiohttp.ClientSession) -> None:
        alert, notice = delivery.alert, delivery.notice
        if alert.via == "webhook":
            body = webhook_document(notice, cluster=self._spec().options.name, alert=alert.id)
            assert alert.secret_file is not None  # the schema requires one
            outcome = await post_webhook(
                session, alert.target, json.dumps(body, separators=(",", ":")).encode(),
                secret_file=alert.secret_file, timeout=alert.timeout, retries=alert.retries,
                backoff=self._backoff,
            )  # fmt: skip
            await self._record(alert, notice, "", outcome)
            return

        async def one(recipient: str) -> None:
            env = agent_environment(
                notice, recipient=recipient, timestamp_format=alert.timestamp_format,
                params=alert.params, tools_dir=self._tools_dir,
            )  # fmt: skip
            await self._record(
                alert, notice, recipient, await run_agent(alert.target, env, alert.timeout)
            )

        # Pacemaker runs an alert's recipients at once, each its own process.
        async with asyncio.TaskGroup() as runs:
            for recipient in alert.recipients or ("",):
                runs.create_task(one(recipient))

    async def _record(
        self, alert: AlertSpec, notice: Notice, recipient: str, outcome: Outcome
    ) -> None:
        ts, kind, rev = self._wall(), notice.event.kind, notice.revision
        event: Event
        if outcome.ok:
            log.info(
                "event=alert_delivered alert=%s event_kind=%s revision=%d", alert.id, kind, rev
            )
            event = AlertDelivered(ts, alert.id, kind, rev, recipient, outcome.attempts)
        else:
            log.warning(
                "event=alert_failed alert=%s event_kind=%s revision=%d reason=%r",
                alert.id, kind, rev, outcome.reason,
            )  # fmt: skip
            event = AlertFailed(
                ts, alert.id, kind, rev, outcome.reason, recipient, outcome.attempts
            )
        try:
            async with asyncio.timeout(RECORD_TIMEOUT):
                await self._events.append(event)
        except (CoordError, TimeoutError) as exc:
            log.warning("event=alert_not_recorded alert=%s error=%r", alert.id, str(exc))

    def cursor(self) -> int:
        """Every delivery up to this revision has finished."""
        return min(self._pending) - 1 if self._pending else self._seen

    async def _save_cursor(self) -> None:
        while True:
            await self._moved.wait()
            self._moved.clear()
            value = self.cursor()
            if value > self._saved:
                try:
                    await self._write(value)
                except CoordError as exc:
                    log.warning("event=alert_cursor_not_saved error=%r", str(exc))
            await asyncio.sleep(CURSOR_INTERVAL if self._spec().alerts else IDLE_CURSOR_INTERVAL)

    async def _write(self, value: int) -> None:
        if not await self._store.save_alert_cursor(self._term, value):
            raise AlertsDeposed(f"controller term {self._term} ended: not delivering alerts")
        self._saved = value
