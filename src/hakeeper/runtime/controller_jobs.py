"""Periodic work only the controller does, once per period for the whole cluster.

A job (a scheduled backup, a restore drill) is handed to the daemon by the face that starts
it, as the resource agents are (`NodeDaemon(jobs=...)`): the runtime names only the
`ControllerJob` shape, never what a job does, so it imports nothing above itself. While a node
is controller, `JobRunner` asks each job for its period (from the stored config; None: not
scheduled), runs it when due, and records the outcome under the controller's term in the key
space (`JobBook`), so a new controller neither repeats a run nor forgets a failure. Each run
is an event: the job's own on success, ``job.failed`` on failure, ``job.overdue`` once when no
run has succeeded for two periods.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Protocol

from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.events import Event, JobFailed, JobOverdue
from hakeeper.model.records import JobRecord
from hakeeper.runtime.events_log import EventLog
from hakeeper.runtime.store import ClusterStore

log = logging.getLogger(__name__)

#: How often the runner looks at its jobs: periods are minutes to days.
TICK = 5.0
#: At most this long for one run; a job needing more says so by failing.
JOB_TIMEOUT = 3600.0
MAX_REASON = 500


class ControllerJob(Protocol):
    @property
    def name(self) -> str:
        """The job's record name, e.g. ``backup``."""
        ...

    async def period(self, store: ClusterStore) -> float | None:
        """Seconds between runs under the cluster's stored config; None: not scheduled."""
        ...

    async def run(self, store: ClusterStore, spec: ClusterSpec) -> Event:
        """Do the job once; the event that says what it did. Raising is a failed run."""
        ...


class JobRunner:
    def __init__(
        self,
        jobs: Sequence[ControllerJob],
        *,
        store: ClusterStore,
        spec: Callable[[], ClusterSpec],
        events: EventLog,
        term: int,
        wall: Callable[[], float] = time.time,
        tick: float = TICK,
        timeout: float = JOB_TIMEOUT,
    ) -> None:
        self._jobs = jobs
        self._store = store
        self._spec = spec
        self._events = events
        self._term = term
        self._wall = wall
        self._tick = tick
        self._timeout = timeout

    async def run(self) -> None:
        """Until cancelled (the node stops being controller)."""
        while True:
            await self.once()
            await asyncio.sleep(self._tick)

    async def once(self) -> None:
        """Look at every job once; run those that are due, one after the other."""
        for job in self._jobs:
            try:
                await self._consider(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the engine, or a job's own look at the
                # config, failed: this look is skipped, the controller goes on controlling.
                log.warning("event=job_skipped job=%s error=%r", job.name, str(exc))

    async def _consider(self, job: ControllerJob) -> None:
        period = await job.period(self._store)
        if period is None:
            return
        now = self._wall()
        book = self._store.jobs()
        known = (await book.records()).get(job.name)
        if known is None:
            # A new schedule: when it started is kept, so every later look counts from it.
            await book.write(self._term, JobRecord(job.name, period, since=now))
            return
        record = replace(known, period=period)
        if record.overdue(now) and record.overdue_since is None:
            age = now - (record.last_ok if record.last_ok is not None else record.since)
            record = replace(record, overdue_since=now)
            if not await book.write(self._term, record):
                return
            await self._events.append(JobOverdue(ts=now, job=job.name, age=round(age, 1)))
        if now < record.next_run():
            return
        # Claim the run under the term first: a deposed controller runs nothing.
        if not await book.write(self._term, record):
            return
        record = await self._run(job, record)
        await book.write(self._term, record)

    async def _run(self, job: ControllerJob, record: JobRecord) -> JobRecord:
        log.info("event=job_start job=%s term=%d", job.name, self._term)
        try:
            async with asyncio.timeout(self._timeout):
                event = await job.run(self._store, self._spec())
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            return await self._failed(job, record, f"did not finish within {self._timeout:g}s")
        except Exception as exc:  # noqa: BLE001 - a job is a plug-in: any failure of it is
            # recorded and reported, and the controller goes on controlling.
            return await self._failed(job, record, f"{type(exc).__name__}: {exc}")
        await self._events.append(event)
        log.info("event=job_done job=%s", job.name)
        return replace(record, last_ok=event.ts, overdue_since=None)

    async def _failed(self, job: ControllerJob, record: JobRecord, reason: str) -> JobRecord:
        now = self._wall()
        reason = reason[:MAX_REASON]
        log.warning("event=job_failed job=%s reason=%r", job.name, reason)
        await self._events.append(JobFailed(ts=now, job=job.name, reason=reason))
        return replace(record, last_failure=now, reason=reason)
