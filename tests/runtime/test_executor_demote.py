"""The executor under on_fail = "demote": a failure as the primary is reported demotable, and
an assignment that keeps the instance as a replica demotes it in place (fake agents)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from hakeeper.agents.base import OcfRc, OpRequest, OpResult
from hakeeper.config.loader import spec_from_text
from hakeeper.model.records import Assignment, Placement
from hakeeper.model.state import Instance
from hakeeper.runtime.executor import Executor
from hakeeper.runtime.record_codec import encode_assignment
from hakeeper.runtime.store import ClusterStore
from tests.fakes import LocalCoordinator
from tests.runtime.test_executor import FakeAgents, RecordingAgent
from tests.runtime.test_executor_promotion import KEYS, SPEC_TEXT, n1_executor

DEMOTE_TEXT = SPEC_TEXT.replace('name = "c1"', 'name = "c1"\nprofile = "fast"').replace(
    'params = { command = "sleep 300" }',
    'params = { command = "sleep 300" }\non_fail = "demote"\nops.monitor = { interval = "50ms" }',
)
DEMOTE = spec_from_text(DEMOTE_TEXT, "test")
RESTART = spec_from_text(DEMOTE_TEXT.replace('on_fail = "demote"', 'on_fail = "restart"'), "t")


class RefusingAgent(RecordingAgent):
    """A store that refuses its promote (as the session store's fence round does) and runs on
    as a replica; ``monitor_rc`` is what its monitor answers. ``refuse`` False: it promotes."""

    def __init__(self, monitor_rc: OcfRc = OcfRc.SUCCESS, *, refuse: bool = True) -> None:
        super().__init__([], asyncio.Event())
        self.monitor_rc = monitor_rc
        self.refuse = refuse

    async def monitor(self, req: OpRequest, *, probe: bool = False) -> OpResult:
        if probe:
            return await super().monitor(req, probe=True)
        return self._ok("monitor", self.monitor_rc)

    async def promote(self, req: OpRequest) -> OpResult:
        return self._ok("promote", OcfRc.ERR_GENERIC if self.refuse else OcfRc.SUCCESS)

    def ops(self) -> list[str]:
        return [op for op, _ in self.calls if op != "monitor"]


async def assign(coord: LocalCoordinator, role: str) -> None:
    placement = Placement("n1", "promoted" if role == "promoted" else "started")
    await coord.put(KEYS.assignment("pg"), encode_assignment(Assignment("pg", (placement,))))


async def refuse_a_promote(coord: LocalCoordinator, executor: Executor) -> None:
    """Start pg on n1 as a replica, then assign it the primary: RefusingAgent refuses."""
    await assign(coord, "started")
    await executor.converge()
    await assign(coord, "promoted")
    await executor.converge()


async def instances(store: ClusterStore) -> tuple[Instance, ...]:
    return (await store.observe(DEMOTE, time.time())).state.instances


async def test_a_refused_promote_is_demoted_in_place_and_monitored_as_a_replica(
    tmp_path: Path,
) -> None:
    agent = RefusingAgent()
    coord, store, executor = await n1_executor(tmp_path, FakeAgents(lambda c: agent), DEMOTE)
    try:
        await refuse_a_promote(coord, executor)
        assert executor.local == {("pg", 0): "failed"}
        assert await instances(store) == (Instance("pg", "n1", "failed", demotable=True),)
        observed = (await store.observe(DEMOTE, time.time())).state
        assert [(f.node, f.count) for f in observed.failcounts] == [("n1", 1)]

        await assign(coord, "started")  # what the scheduler writes for "demote pg on n1"
        await executor.converge()
        assert executor.local == {("pg", 0): "started"}
        assert await instances(store) == (Instance("pg", "n1", "started"),)
        assert agent.ops() == ["start", "promote", "demote"]  # no stop, no second start
        monitors = sum(op == "monitor" for op, _ in agent.calls)
        deadline = time.monotonic() + 10
        while sum(op == "monitor" for op, _ in agent.calls) <= monitors:
            assert time.monotonic() < deadline, "no monitor of the replica after the demote"
            await asyncio.sleep(0.02)
        assert executor.local == {("pg", 0): "started"}
    finally:
        await executor.shutdown()


async def test_under_on_fail_restart_a_refused_promote_stays_failed_for_the_scheduler(
    tmp_path: Path,
) -> None:
    agent = RefusingAgent()
    coord, store, executor = await n1_executor(tmp_path, FakeAgents(lambda c: agent), RESTART)
    try:
        await refuse_a_promote(coord, executor)
        await assign(coord, "started")
        await executor.converge()
        assert executor.local == {("pg", 0): "failed"}
        assert "demote" not in agent.ops()
        # Reported again under the new epoch, still demotable: on_fail decides, not the flag.
        assert await instances(store) == (Instance("pg", "n1", "failed", demotable=True),)
    finally:
        await executor.shutdown()


async def primary_whose_monitor_answers(tmp_path: Path, rc: OcfRc) -> tuple[Instance, ...]:
    agent = RefusingAgent(OcfRc.RUNNING_PROMOTED, refuse=False)
    coord, store, executor = await n1_executor(tmp_path, FakeAgents(lambda c: agent), DEMOTE)
    try:
        await assign(coord, "promoted")
        await executor.converge()
        assert executor.local == {("pg", 0): "promoted"}
        agent.monitor_rc = rc
        deadline = time.monotonic() + 10
        while executor.local != {("pg", 0): "failed"}:
            assert time.monotonic() < deadline, f"a monitor answering {rc!r} did not fail"
            await asyncio.sleep(0.02)
        return await instances(store)
    finally:
        await executor.shutdown()


async def test_a_primary_whose_monitor_finds_it_a_replica_is_demotable(tmp_path: Path) -> None:
    found = await primary_whose_monitor_answers(tmp_path, OcfRc.SUCCESS)
    assert found == (Instance("pg", "n1", "failed", demotable=True),)


async def test_a_primary_whose_monitor_finds_it_stopped_is_not_demotable(tmp_path: Path) -> None:
    found = await primary_whose_monitor_answers(tmp_path, OcfRc.NOT_RUNNING)
    assert found == (Instance("pg", "n1", "failed"),)


class DemoteRefusingAgent(RefusingAgent):
    """Refuses its promote, then its demote too."""

    async def demote(self, req: OpRequest) -> OpResult:
        return self._ok("demote", OcfRc.ERR_GENERIC)


async def test_a_failed_demote_after_a_refused_promote_is_an_ordinary_failure(
    tmp_path: Path,
) -> None:
    agent = DemoteRefusingAgent()
    coord, store, executor = await n1_executor(tmp_path, FakeAgents(lambda c: agent), DEMOTE)
    try:
        for role in ("started", "promoted", "started"):
            await assign(coord, role)
            await executor.converge()
        assert executor.local == {("pg", 0): "failed"}
        assert await instances(store) == (Instance("pg", "n1", "failed"),)  # stop, start
        await assign(coord, "started")  # a newer write: reported again, not demoted again
        await executor.converge()
        assert agent.ops() == ["start", "promote", "demote"]
        assert await instances(store) == (Instance("pg", "n1", "failed"),)
    finally:
        await executor.shutdown()
