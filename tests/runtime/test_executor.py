"""The executor's self-fencing (rule 1) and how it takes assignments, on a fake engine, with
fake and real resource agents."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hakeeper.agents.base import OcfRc, OpRequest, OpResult, ResourceAgent, make_result
from hakeeper.agents.factory import AgentContext
from hakeeper.agents.procfs import process_start_time
from hakeeper.agents.registry import BUILTIN_AGENTS
from hakeeper.config.loader import spec_from_text
from hakeeper.coord.base import KV
from hakeeper.errors import NoQuorum
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.records import Assignment, MemberRecord, Placement
from hakeeper.model.timing import PROFILES
from hakeeper.runtime import executor as executor_module
from hakeeper.runtime.events_log import EventLog
from hakeeper.runtime.executor import RECHECK_INTERVAL, Executor
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.membership import Membership
from hakeeper.runtime.record_codec import encode_assignment
from hakeeper.runtime.store import ClusterStore
from tests.fakes import LocalCoordinator

KEYS = KeySpace("c1")
SPEC_TEXT = (
    '[cluster]\nname = "c1"\nprofile = "fast"\n[nodes.n1]\n'
    '[resources.db]\nagent = "process"\nparams = { command = "sleep 1" }\n'
)
SPEC = spec_from_text(SPEC_TEXT, "test")


class RecordingAgent:
    """Answers every op with success and records when it was asked."""

    def __init__(self, calls: list[tuple[str, float]], started: asyncio.Event) -> None:
        self.calls = calls
        self.started = started

    def _ok(self, op: str, rc: OcfRc = OcfRc.SUCCESS) -> OpResult:
        self.calls.append((op, time.monotonic()))
        return make_result(op, rc, started=time.monotonic(), resource="db")

    async def start(self, req: OpRequest) -> OpResult:
        self.started.set()
        return self._ok("start")

    async def stop(self, req: OpRequest) -> OpResult:
        return self._ok("stop")

    async def monitor(self, req: OpRequest, *, probe: bool = False) -> OpResult:
        return self._ok(
            "probe" if probe else "monitor", OcfRc.NOT_RUNNING if probe else OcfRc.SUCCESS
        )

    async def promote(self, req: OpRequest) -> OpResult:
        return self._ok("promote")

    async def demote(self, req: OpRequest) -> OpResult:
        return self._ok("demote")

    def meta_data(self) -> Any:
        return None


@dataclass
class FakeAgents:
    """An agent table that answers every spec with what ``build`` makes of its context."""

    build: Callable[[AgentContext], ResourceAgent]

    def make(self, spec: str, context: AgentContext) -> ResourceAgent:
        return self.build(context)


async def assigned_here() -> tuple[LocalCoordinator, Membership]:
    """A fake engine where n1 holds a fast-profile lease and ``db`` is assigned to it."""
    coord = LocalCoordinator()
    membership = Membership(
        coord, KEYS, MemberRecord("n1", "127.0.0.11"), PROFILES["fast"], time.monotonic
    )
    await membership.join()
    await coord.put(KEYS.assignment("db"), encode_assignment(Assignment("db", (Placement("n1"),))))
    return coord, membership


def executor_for(
    tmp_path: Path,
    coord: LocalCoordinator,
    membership: Membership,
    spec: ClusterSpec = SPEC,
    agents: FakeAgents | None = None,
) -> Executor:
    """An executor of node n1; real process agents unless ``agents`` fakes them."""
    return Executor(
        node="n1", spec=lambda: spec, store=ClusterStore(coord, KEYS),
        events=EventLog(coord, KEYS, "n1"), membership=membership, state_dir=tmp_path,
        agents=agents or BUILTIN_AGENTS,
    )  # fmt: skip


@dataclass
class Recorded:
    """An executor of n1 on a fake engine where ``db`` is assigned to n1, its agent
    recording every op (``calls``) and setting ``started`` at the start."""

    coord: LocalCoordinator
    membership: Membership
    executor: Executor
    calls: list[tuple[str, float]]
    started: asyncio.Event


async def recorded_here(tmp_path: Path, agent: type[RecordingAgent] = RecordingAgent) -> Recorded:
    coord, membership = await assigned_here()
    calls: list[tuple[str, float]] = []
    started = asyncio.Event()
    executor = executor_for(
        tmp_path, coord, membership, agents=FakeAgents(lambda context: agent(calls, started))
    )
    return Recorded(coord, membership, executor, calls, started)


async def cut_off_once_started(
    executor: Executor, coord: LocalCoordinator, membership: Membership, started: asyncio.Event
) -> tuple[float, float]:
    """Run the executor; once its agent was asked to start, cut the engine off (no renewal,
    no watch event: only the clock acts) and run past the lease's engine-side expiry.
    Returns the membership deadline and that expiry as they stood at the cut."""
    running = asyncio.create_task(executor.run())
    try:
        await asyncio.wait_for(started.wait(), 10)
        coord.fail_with = NoQuorum("cut off")
        deadline, safe_until = membership.deadline, membership.lease_safe_until
        await asyncio.sleep(max(0.0, safe_until - time.monotonic()) + 0.5)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    return deadline, safe_until


async def test_an_exclusive_resource_stops_at_the_membership_deadline_not_later(
    tmp_path: Path,
) -> None:
    here = await recorded_here(tmp_path)
    deadline, _ = await cut_off_once_started(
        here.executor, here.coord, here.membership, here.started
    )

    stops = [at for op, at in here.calls if op == "stop"]
    assert stops, "the exclusive resource was never stopped after the deadline"
    assert stops[0] - deadline < RECHECK_INTERVAL / 2


class HangingStartAgent(RecordingAgent):
    """A start that never returns (a service stuck coming up)."""

    async def start(self, req: OpRequest) -> OpResult:
        self.started.set()
        self.calls.append(("start", time.monotonic()))
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


async def test_a_start_still_running_at_the_deadline_is_cut_short_and_stopped(
    tmp_path: Path,
) -> None:
    here = await recorded_here(tmp_path, HangingStartAgent)
    _, safe_until = await cut_off_once_started(
        here.executor, here.coord, here.membership, here.started
    )

    stops = [at for op, at in here.calls if op == "stop"]
    assert stops, "the half-started exclusive resource was never stopped"
    assert stops[0] < safe_until


async def test_a_service_ignoring_sigterm_is_killed_before_the_lease_can_expire(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "pid"
    script = tmp_path / "stubborn.sh"
    script.write_text(f"trap '' TERM\necho $$ > {pid_file}\nexec sleep 1000\n")
    spec = spec_from_text(
        '[cluster]\nname = "c1"\nprofile = "fast"\n[nodes.n1]\n[resources.db]\n'
        f'agent = "process"\nparams = {{ command = "sh {script}" }}\n',
        "test",
    )
    coord, membership = await assigned_here()
    executor = executor_for(tmp_path, coord, membership, spec=spec)
    running = asyncio.create_task(executor.run())
    try:
        # The start returns once the shell runs, which may be before it wrote its pid.
        for _ in range(400):
            if executor.local and pid_file.exists() and pid_file.read_text().strip():
                break
            await asyncio.sleep(0.05)
        pid = int(pid_file.read_text())
        coord.fail_with = NoQuorum("cut off")
        safe_until = membership.lease_safe_until
        await asyncio.sleep(max(0.0, safe_until - time.monotonic()))
        gone_in_time = process_start_time(pid) is None
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    assert gone_in_time, "the service outlived the lease it was started under"
    assert not executor.holds_exclusive()


async def test_agents_are_built_with_the_cluster_secret_file_by_path(tmp_path: Path) -> None:
    coord, membership = await assigned_here()
    built: list[AgentContext] = []

    def build(context: AgentContext) -> RecordingAgent:
        built.append(context)
        return RecordingAgent([], asyncio.Event())

    executor = executor_for(tmp_path, coord, membership, agents=FakeAgents(build))
    executor.check_agents(SPEC, {"db"})
    assert [c.secret_file for c in built] == [Path(SPEC.coordination.secret_file)]


async def test_a_placement_written_before_this_node_joined_is_not_started_until_rewritten(
    tmp_path: Path,
) -> None:
    # The nemesis's double holder: a fenced node rebooted and started what an assignment
    # written while it was away still placed on it.
    coord = LocalCoordinator()
    stale = encode_assignment(Assignment("db", (Placement("n1"),)))
    await coord.put(KEYS.assignment("db"), stale)
    membership = Membership(
        coord, KEYS, MemberRecord("n1", "127.0.0.11"), PROFILES["fast"], time.monotonic
    )
    await membership.join()
    calls: list[tuple[str, float]] = []
    executor = executor_for(
        tmp_path, coord, membership,
        agents=FakeAgents(lambda context: RecordingAgent(calls, asyncio.Event())),
    )  # fmt: skip

    await executor.converge()
    assert [op for op, _ in calls] == []

    await coord.put(KEYS.assignment("db"), stale)  # the controller places it here again
    await executor.converge()
    assert [op for op, _ in calls][:1] == ["start"]
    await executor.shutdown()


class FailingStopAgent(RecordingAgent):
    """Starts, but its stop times out (the VIP's did under load at a 0.1 s bound)."""

    async def stop(self, req: OpRequest) -> OpResult:
        self.calls.append(("stop", time.monotonic()))
        return make_result(
            "stop", OcfRc.ERR_GENERIC, started=time.monotonic(), resource="db", timed_out=True
        )


async def test_a_stop_that_fails_while_self_fencing_is_reported_as_a_failed_stop(
    tmp_path: Path,
) -> None:
    coord, membership = await assigned_here()
    executor = executor_for(
        tmp_path, coord, membership,
        agents=FakeAgents(lambda context: FailingStopAgent([], asyncio.Event())),
    )  # fmt: skip
    await executor.converge()

    await executor._self_fence.fence()

    observed = await ClusterStore(coord, KEYS).observe(SPEC, time.time())
    [status] = [s for s in observed.statuses if s.resource == "db"]
    assert (status.role, status.op) == ("failed", "stop")
    assert [i.stop_failed for i in observed.state.instances if i.resource == "db"] == [True]


class AssignmentReads(LocalCoordinator):
    """Counts the reads of every assignment."""

    def __init__(self) -> None:
        super().__init__()
        self.assignment_reads = 0
        self.read = asyncio.Event()

    async def range(self, prefix: str) -> list[KV]:
        if prefix == KEYS.assignments:
            self.assignment_reads += 1
            self.read.set()
        return await super().range(prefix)


async def test_an_assignment_the_watch_delivers_is_started_without_a_read_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each read is a Raft commit on the failover path; only the recheck reads them all.
    monkeypatch.setattr(executor_module, "RECHECK_INTERVAL", 60.0)
    coord = AssignmentReads()
    membership = Membership(
        coord, KEYS, MemberRecord("n1", "127.0.0.11"), PROFILES["fast"], time.monotonic
    )
    await membership.join()
    started = asyncio.Event()
    executor = executor_for(
        tmp_path, coord, membership,
        agents=FakeAgents(lambda context: RecordingAgent([], started)),
    )  # fmt: skip
    running = asyncio.create_task(executor.run())
    try:
        await asyncio.wait_for(coord.read.wait(), 10)  # the first converge reads them all
        reads = coord.assignment_reads
        await coord.put(
            KEYS.assignment("db"), encode_assignment(Assignment("db", (Placement("n1"),)))
        )
        await asyncio.wait_for(started.wait(), 10)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert coord.assignment_reads == reads


async def test_a_torn_assignment_leaves_the_executor_running_what_it_runs(
    tmp_path: Path,
) -> None:
    here = await recorded_here(tmp_path)
    renewing = asyncio.create_task(here.membership.run())
    running = asyncio.create_task(here.executor.run())
    try:
        await asyncio.wait_for(here.started.wait(), 10)
        await here.coord.put(KEYS.assignment("db"), b'{"placements": [["n1"')  # rule 5
        await asyncio.sleep(RECHECK_INTERVAL * 1.5)  # the watch's delivery and a full read
        assert not running.done()
    finally:
        running.cancel()
        renewing.cancel()
        await asyncio.gather(running, renewing, return_exceptions=True)
    assert [op for op, _ in here.calls if op in ("start", "stop")] == ["start"]
