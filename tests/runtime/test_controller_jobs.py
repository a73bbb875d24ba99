"""Periodic controller jobs: one run per period for the whole cluster (the record is in the
key space, under the controller's term), each run an event, a failure and an overdue job
each an event and a warning in `status`."""

from __future__ import annotations

from hakeeper.config.loader import spec_from_text
from hakeeper.errors import HakeeperError
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.events import BackupCreated, Event, JobFailed, JobOverdue
from hakeeper.runtime.controller_jobs import ControllerJob, JobRunner
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.status_report import collect_status
from hakeeper.runtime.store import ClusterStore
from tests.fakes import LocalCoordinator

SPEC = spec_from_text('[cluster]\nname = "c1"\n[nodes.n1]\n', "test")


class Wall:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class CountingJob:
    name = "backup"

    def __init__(self, wall: Wall, fail: bool = False) -> None:
        self.runs = 0
        self.fail = fail
        self.wall = wall

    async def period(self, store: ClusterStore) -> float | None:
        return 10.0

    async def run(self, store: ClusterStore, spec: ClusterSpec) -> Event:
        self.runs += 1
        if self.fail:
            raise HakeeperError("the store is full")
        return BackupCreated(self.wall(), f"b{self.runs}", 10, 0.1, 5)


async def runner_for(
    job: ControllerJob, wall: Wall, coord: LocalCoordinator | None = None
) -> tuple[JobRunner, ClusterStore]:
    coord = coord or LocalCoordinator()
    store = ClusterStore(coord, KeySpace("c1"))
    term = (await store.election("n1").campaign(await coord.grant(30.0))).term
    runner = JobRunner(
        [job], store=store, spec=lambda: SPEC, events=store.event_log("n1"), term=term, wall=wall
    )
    return runner, store


async def kinds(store: ClusterStore) -> list[str]:
    return [e.kind for e in await store.event_log("x").read() if e.kind != "controller.elected"]


async def test_a_job_runs_once_per_period_and_each_run_is_an_event() -> None:
    wall = Wall()
    job = CountingJob(wall)
    runner, store = await runner_for(job, wall)
    await runner.once()
    assert job.runs == 0  # a new schedule waits one period (at most ten minutes) first
    wall.now += 10.0
    await runner.once()
    await runner.once()
    assert job.runs == 1
    wall.now += 10.0
    await runner.once()
    assert job.runs == 2
    assert await kinds(store) == ["backup.created", "backup.created"]


async def test_a_new_controller_does_not_repeat_a_run_of_this_period() -> None:
    wall = Wall()
    coord = LocalCoordinator()
    first = CountingJob(wall)
    runner, _ = await runner_for(first, wall, coord)
    await runner.once()
    wall.now += 10.0
    await runner.once()
    await coord.delete(KeySpace("c1").controller)
    second = CountingJob(wall)
    runner, _ = await runner_for(second, wall, coord)
    await runner.once()
    assert (first.runs, second.runs) == (1, 0)


async def test_a_failed_run_is_an_event_and_a_status_warning() -> None:
    wall = Wall()
    runner, store = await runner_for(CountingJob(wall, fail=True), wall)
    await runner.once()
    wall.now += 10.0
    await runner.once()
    events = await store.event_log("x").read()
    assert any(isinstance(e, JobFailed) and "store is full" in e.reason for e in events)
    report = await collect_status(store, SPEC, wall())
    assert any("scheduled backup failed" in w for w in report.warnings)


async def test_an_overdue_job_is_one_event_and_a_status_warning() -> None:
    wall = Wall()
    runner, store = await runner_for(CountingJob(wall, fail=True), wall)
    await runner.once()
    for _ in range(3):
        wall.now += 30.0
        await runner.once()
    overdue = [e for e in await store.event_log("x").read() if isinstance(e, JobOverdue)]
    assert len(overdue) == 1
    report = await collect_status(store, SPEC, wall())
    assert any("scheduled backup overdue" in w for w in report.warnings)


async def test_a_deposed_controller_records_nothing() -> None:
    wall = Wall()
    coord = LocalCoordinator()
    job = CountingJob(wall)
    runner, store = await runner_for(job, wall, coord)
    await coord.delete(KeySpace("c1").controller)
    wall.now += 10.0
    await runner.once()
    assert job.runs == 0
    assert await store.jobs().records() == {}


class BrokenPeriod(CountingJob):
    async def period(self, store: ClusterStore) -> float | None:
        raise ValueError("the job's own look at the config failed")


async def test_a_job_that_fails_to_say_its_period_is_skipped_not_fatal() -> None:
    wall = Wall()
    job = BrokenPeriod(wall)
    runner, store = await runner_for(job, wall)
    await runner.once()
    assert job.runs == 0
    assert await store.jobs().records() == {}
