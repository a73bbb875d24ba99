"""Rule 1 under ``no_quorum_policy = "demote"``: when the membership deadline passes, a
promotable clone's primary is demoted and kept running as a replica (an in-memory store keeps
its data), while every other resource stops (fake agents, fake engine)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hakeeper.agents.base import OcfRc, OpRequest, OpResult
from hakeeper.config.loader import spec_from_text
from hakeeper.model.records import Assignment, Placement
from hakeeper.runtime.record_codec import encode_assignment
from tests.runtime.test_executor import FakeAgents
from tests.runtime.test_executor_demote import RefusingAgent
from tests.runtime.test_executor_promotion import KEYS, SPEC_TEXT, n1_executor

POLICY_TEXT = SPEC_TEXT.replace('name = "c1"', 'name = "c1"\nprofile = "fast"')


class DemoteFailingAgent(RefusingAgent):
    """Promotes, then fails its demote."""

    def __init__(self) -> None:
        super().__init__(refuse=False)

    async def demote(self, req: OpRequest) -> OpResult:
        return self._ok("demote", OcfRc.ERR_GENERIC)


async def primary_then_cut_off(
    tmp_path: Path, policy: str, agent: RefusingAgent | None = None
) -> tuple[list[str], dict[tuple[str, int], str], bool]:
    """pg promoted on n1 under ``policy``, then n1's membership lapses (nothing renews it):
    the agent's ops, what runs here and whether the watchdog may stop being fed (something
    exclusive held) once the executor has self-fenced."""
    spec = spec_from_text(
        POLICY_TEXT.replace('name = "c1"', f'name = "c1"\nno_quorum_policy = "{policy}"'), "t"
    )
    agent = agent or RefusingAgent(refuse=False)
    coord, _, executor = await n1_executor(tmp_path, FakeAgents(lambda c: agent), spec)
    await coord.put(
        KEYS.assignment("pg"),
        encode_assignment(Assignment("pg", (Placement("n1", "promoted"),))),
    )
    await executor.converge()
    assert executor.local == {("pg", 0): "promoted"}
    running = asyncio.create_task(executor.run())
    try:
        await asyncio.wait_for(executor.wait_self_fenced(), timeout=30)
        kept, exclusive = dict(executor.local), executor.holds_exclusive()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    return agent.ops(), kept, exclusive


async def test_a_lost_quorum_under_demote_keeps_the_primary_running_as_a_replica(
    tmp_path: Path,
) -> None:
    ops, kept, exclusive = await primary_then_cut_off(tmp_path, "demote")
    assert ops[-1] == "demote", ops
    assert "stop" not in ops
    assert kept == {("pg", 0): "started"}
    assert not exclusive  # an armed watchdog keeps being fed: the replica is no reason to reset


async def test_a_lost_quorum_under_stop_stops_the_promotable_clone_too(tmp_path: Path) -> None:
    ops, kept, exclusive = await primary_then_cut_off(tmp_path, "stop")
    assert ops[-2:] == ["demote", "stop"]
    assert kept == {}
    assert not exclusive


async def test_a_primary_whose_demote_fails_under_demote_is_stopped(tmp_path: Path) -> None:
    # Kept as a replica only once it is one: a primary that may still be one does not run on.
    ops, kept, exclusive = await primary_then_cut_off(tmp_path, "demote", DemoteFailingAgent())
    assert ops[-2:] == ["demote", "stop"]
    assert kept == {}
    assert not exclusive
