"""The executor and the promotion protocol: what a stop clears, and what agents are given."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from hakeeper.agents.base import OcfRc, OpRequest, OpResult, make_result
from hakeeper.agents.factory import AgentMaker
from hakeeper.agents.registry import BUILTIN_AGENTS
from hakeeper.config.loader import spec_from_text
from hakeeper.model.attributes import NodeAttribute
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.records import Assignment, MemberRecord, Placement
from hakeeper.model.timing import PROFILES
from hakeeper.runtime.events_log import EventLog
from hakeeper.runtime.executor import Executor
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.membership import Membership
from hakeeper.runtime.record_codec import encode_assignment
from hakeeper.runtime.store import ClusterStore
from tests.fakes import LocalCoordinator
from tests.runtime.test_executor import FakeAgents, RecordingAgent

KEYS = KeySpace("c1")
SPEC_TEXT = (
    '[cluster]\nname = "c1"\n[nodes.n1]\naddress = "127.0.0.11"\n'
    '[resources.pg]\nagent = "process"\nparams = { command = "sleep 300" }\n'
    '[clones.db]\nresource = "pg"\npromotable = true\n'
)
SPEC = spec_from_text(SPEC_TEXT, "test")


async def n1_executor(
    tmp_path: Path, agents: AgentMaker = BUILTIN_AGENTS, spec: ClusterSpec = SPEC
) -> tuple[LocalCoordinator, ClusterStore, Executor]:
    """An executor of n1, a joined fast-profile member of a fake engine, running ``spec``."""
    coord = LocalCoordinator()
    membership = Membership(
        coord, KEYS, MemberRecord("n1", "127.0.0.11"), PROFILES["fast"], time.monotonic
    )
    await membership.join()
    store = ClusterStore(coord, KEYS)
    executor = Executor(
        node="n1", spec=lambda: spec, store=store, events=EventLog(coord, KEYS, "n1"),
        membership=membership, state_dir=tmp_path, agents=agents,
    )  # fmt: skip
    return coord, store, executor


async def test_a_stop_clears_the_node_s_transient_promotion_score_only(tmp_path: Path) -> None:
    coord, store, executor = await n1_executor(tmp_path)
    await store.set_attribute(NodeAttribute("n1", "master-pg", "5", "reboot"))
    await store.set_attribute(NodeAttribute("n1", "master-pg", "9", "forever"))
    await coord.put(KEYS.assignment("pg"), encode_assignment(Assignment("pg", (Placement("n1"),))))
    await executor.converge()
    assert executor.local == {("pg", 0): "started"}
    await coord.put(KEYS.assignment("pg"), encode_assignment(Assignment("pg", ())))
    await executor.converge()
    assert executor.local == {}
    left = [(a.name, a.lifetime) for a in (await store.live_attributes()).attributes]
    assert left == [("master-pg", "forever")]


class PromotingDuringMonitorAgent(RecordingAgent):
    """PAF's timing: a monitor begun while the instance was a replica returns only after the
    promote finished, so it answers "running promoted"."""

    def __init__(self) -> None:
        super().__init__([], asyncio.Event())
        self.monitor_running = asyncio.Event()
        self.release = asyncio.Event()
        self.promoted = False
        self.monitors = 0

    async def monitor(self, req: OpRequest, *, probe: bool = False) -> OpResult:
        if probe:
            return await super().monitor(req, probe=True)
        self.monitor_running.set()
        await self.release.wait()
        self.monitors += 1
        rc = OcfRc.RUNNING_PROMOTED if self.promoted else OcfRc.SUCCESS
        return make_result("monitor", rc, started=time.monotonic(), resource="pg")

    async def promote(self, req: OpRequest) -> OpResult:
        await self.monitor_running.wait()
        self.promoted = True
        return make_result("promote", OcfRc.SUCCESS, started=time.monotonic(), resource="pg")


async def test_a_monitor_that_overlaps_a_promote_is_not_a_failure(tmp_path: Path) -> None:
    agent = PromotingDuringMonitorAgent()
    fast = spec_from_text(SPEC_TEXT.replace('name = "c1"', 'name = "c1"\nprofile = "fast"'), "t")
    coord, _, executor = await n1_executor(tmp_path, FakeAgents(lambda context: agent), fast)
    await coord.put(KEYS.assignment("pg"), encode_assignment(Assignment("pg", (Placement("n1"),))))
    await executor.converge()
    await asyncio.wait_for(agent.monitor_running.wait(), 10)
    promoted = Assignment("pg", (Placement("n1", "promoted"),), epoch=2)
    await coord.put(KEYS.assignment("pg"), encode_assignment(promoted))
    await executor.converge()
    agent.release.set()  # the monitor begun as a replica now answers "promoted"
    deadline = time.monotonic() + 10
    while agent.monitors < 2 and executor.local != {("pg", 0): "failed"}:
        assert time.monotonic() < deadline, "no monitor after the promote"
        await asyncio.sleep(0.05)
    try:
        assert executor.local == {("pg", 0): "promoted"}
    finally:
        await executor.shutdown()


class CrashedPrimaryAgent(RecordingAgent):
    """PAF's probe on a node whose primary crashed: controldata "in production", nothing
    running (rc 9, FAILED_PROMOTED)."""

    async def monitor(self, req: OpRequest, *, probe: bool = False) -> OpResult:
        return make_result(
            "monitor", OcfRc.FAILED_PROMOTED, started=time.monotonic(), resource="pg"
        )


async def test_a_probe_that_finds_a_crashed_primary_reports_a_failure_not_a_primary(
    tmp_path: Path,
) -> None:
    crashed = FakeAgents(lambda context: CrashedPrimaryAgent([], asyncio.Event()))
    _, store, executor = await n1_executor(tmp_path, crashed)
    await executor.probe()
    assert executor.local == {("pg", 0): "failed"}
    statuses = (await store.live_instances()).statuses
    assert [(s.node, s.role) for s in statuses] == [("n1", "failed")]


async def test_an_instance_failed_here_is_reported_failed_again_when_assigned_anew(
    tmp_path: Path,
) -> None:
    """Not silence: the controller would wait out the whole start timeout before it plans
    the stop that recovery needs."""
    crashed = FakeAgents(lambda context: CrashedPrimaryAgent([], asyncio.Event()))
    coord, store, executor = await n1_executor(tmp_path, crashed)
    await executor.probe()
    await coord.put(KEYS.assignment("pg"), encode_assignment(Assignment("pg", (Placement("n1"),))))
    await executor.converge()
    epoch = (await store.assignments())["pg"].epoch
    [status] = (await store.live_instances()).statuses
    assert (status.role, status.epoch, status.rc) == ("failed", epoch, 9)
