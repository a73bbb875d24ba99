"""Nodes added and removed on a real cluster: one agent process per node on loopback, the
embedded Raft group, a writer and an exclusive service running throughout.

One cluster for the module, driven through 3 → 4 → 3 nodes: the new node's daemon joins
with ``agent --join`` while `NodeChanges` (what ``hakeeper node add`` runs) makes it a voter;
the node that runs the service is removed (its service moves first, its daemon stops by
itself, exit 0); restarted with its old data it is refused. No acknowledged write is lost,
writes stall for less than one election's worth, and the service never runs twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from hakeeper.coord.base import Coordinator, MembershipChanges
from hakeeper.errors import CoordError
from hakeeper.lab.holders import describe, overlaps
from hakeeper.lab.loopback import LoopbackCluster, free_port_on, read_records
from hakeeper.lab.processes import ManagedProcess
from hakeeper.model.node_change import NodeChange
from hakeeper.runtime.node_changes import ChangeLimits, NodeChanges
from hakeeper.runtime.store import ClusterStore

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

# A write stalled longer than this is an outage: a few elections of the fast profile, with
# room for a loaded 2-core machine.
MAX_WRITE_STALL = 5.0


def resources(record: Path, port: int) -> str:
    command = f"{sys.executable} -m hakeeper.lab.http_app --port {port} --name singleton"
    return f"""
[resources.singleton]
agent = "process"
params = {{ command = "{command} --record {record}" }}
ops.monitor = {{ interval = "1s", timeout = "5s" }}
"""


class Writer:
    """Puts a numbered key every 20 ms; remembers which writes were acknowledged, when."""

    def __init__(self, coord: Coordinator) -> None:
        self.coord = coord
        self.acked: list[tuple[float, int]] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        for i in range(100_000):
            with contextlib.suppress(CoordError, TimeoutError):
                async with asyncio.timeout(10.0):
                    await self.coord.put(f"/test/writes/{i:06d}", b"x")
                self.acked.append((time.monotonic(), i))
            await asyncio.sleep(0.02)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def longest_stall(self, since: float) -> float:
        times = [t for t, _ in self.acked if t >= since]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    async def lost(self) -> list[int]:
        stored = {kv.key for kv in await self.coord.range("/test/writes/")}
        return [i for _, i in self.acked if f"/test/writes/{i:06d}" not in stored]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def lab(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LoopbackCluster]:
    base = tmp_path_factory.mktemp("nodes")
    port = free_port_on(["127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14"])
    cluster = LoopbackCluster(base, resources(base / "singleton.record", port))
    try:
        await cluster.start()
        await cluster.wait_for("the service to start", lambda o: bool(o.running_on("singleton")))
        yield cluster
    finally:
        await cluster.close()


def changes(
    lab: LoopbackCluster, coord: Coordinator, configured: asyncio.Event | None = None, **kw: bool
) -> NodeChanges:
    """What `hakeeper node add|remove|replace` runs, on the lab's client; the lab's cluster
    file is the operator's file the command rewrites (``configured`` is set once it has)."""
    assert isinstance(coord, MembershipChanges)

    def on_config(text: str) -> None:
        lab.config_path.write_text(text)
        if configured is not None:
            configured.set()

    return NodeChanges(
        ClusterStore(coord, lab.keys),
        coord,
        lab.config_path.read_text(),
        on_config=on_config,
        limits=ChangeLimits(drain=120.0, join=120.0, gone=30.0, poll=0.2),
        **kw,
    )


def holders_never_overlap(lab: LoopbackCluster) -> None:
    found = overlaps(read_records(lab.base_dir / "singleton.record"), lab.down_since)
    assert not found, f"two holders: {describe(found)}"


async def test_a_new_node_joins_as_a_learner_then_votes_and_runs_resources(
    lab: LoopbackCluster,
) -> None:
    coord = await lab.coordinator()
    writer = Writer(coord)
    writer.start()
    started = time.monotonic()
    try:
        address = lab.new_node("n4")
        configured = asyncio.Event()
        runner = changes(lab, coord, configured)
        change = NodeChange("add", "n4", address, "configure", time.time())
        adding = asyncio.create_task(runner.run(await runner.begin(change)))
        async with asyncio.timeout(60):
            await configured.wait()
        await lab.start(["n4"])
        async with asyncio.timeout(180):
            await adding
    finally:
        await writer.stop()
    assert isinstance(coord, MembershipChanges)
    assert address in (await coord.members()).voters
    assert await lab.wait_for("n4 online", lambda o: "n4" in o.members, timeout=30)
    stall = writer.longest_stall(started)
    print(f"add n4: longest write stall {stall:.3f}s over {len(writer.acked)} writes")
    assert stall < MAX_WRITE_STALL, lab.tails()
    assert await writer.lost() == []
    holders_never_overlap(lab)


async def test_removing_the_node_that_runs_the_service_moves_it_first_and_stops_the_daemon(
    lab: LoopbackCluster,
) -> None:
    coord = await lab.coordinator()
    (holder,) = (await lab.observe()).running_on("singleton")
    lab.old_config = lab.config_path.read_text()  # type: ignore[attr-defined]
    writer = Writer(coord)
    writer.start()
    started = time.monotonic()
    try:
        runner = changes(lab, coord)
        change = NodeChange("remove", holder, lab.raft_address(holder), "check_fenced", 0.0)
        async with asyncio.timeout(180):
            await runner.run(await runner.begin(change))
        code = await lab.exited(holder, 90)
    finally:
        await writer.stop()
    assert code == 0, lab.tails()
    assert isinstance(coord, MembershipChanges)
    members = await coord.members()
    assert lab.raft_address(holder) in members.retired
    assert len(members.voters) == 3
    observed = await lab.wait_for(
        "the service elsewhere", lambda o: bool(o.running_on("singleton"))
    )
    assert holder not in observed.running_on("singleton")
    assert f"[nodes.{holder}]" not in lab.config_path.read_text()
    stall = writer.longest_stall(started)
    print(f"remove {holder}: longest write stall {stall:.3f}s over {len(writer.acked)} writes")
    assert stall < MAX_WRITE_STALL
    assert await writer.lost() == []
    holders_never_overlap(lab)
    lab.removed = holder  # type: ignore[attr-defined]


async def test_a_removed_node_restarted_with_its_old_data_is_refused(
    lab: LoopbackCluster,
) -> None:
    removed: str = lab.removed  # type: ignore[attr-defined]
    # The machine comes back as it was: its old cluster file (naming itself), its old data.
    old_config = lab.base_dir / f"{removed}-old-cluster.toml"
    old_config.write_text(lab.old_config)  # type: ignore[attr-defined]
    argv = lab.agent_argv(removed)
    argv[argv.index(str(lab.config_path))] = str(old_config)
    log_path = lab.base_dir / f"{removed}-restarted.log"
    agent = ManagedProcess(removed, argv, log_path)
    agent.start(env=lab.agent_env(removed))
    try:
        await asyncio.to_thread(agent.wait, 120)
        assert agent.returncode == 2, agent.log_tail()
    finally:
        agent.kill()
    assert "was removed from this cluster" in log_path.read_text()
    coord = await lab.coordinator()
    assert await coord.has_quorum()
    assert isinstance(coord, MembershipChanges)
    assert lab.raft_address(removed) not in (await coord.members()).voters


async def test_a_killed_node_is_replaced_by_a_fresh_machine_even_if_the_new_one_crashes_joining(
    lab: LoopbackCluster,
) -> None:
    coord = await lab.coordinator()
    (holder,) = (await lab.observe()).running_on("singleton")
    removed: str = lab.removed  # type: ignore[attr-defined]
    dead = next(n for n in ("n1", "n2", "n3", "n4") if n not in (holder, removed))
    lab.crash(dead)  # SIGKILL, as a power cut: its machine is gone for good
    writer = Writer(coord)
    writer.start()
    started = time.monotonic()
    try:
        address = lab.new_node("n5")
        configured = asyncio.Event()
        runner = changes(lab, coord, configured, confirm_off=True)
        change = NodeChange(
            "replace", "n5", address, "check_fenced", 0.0, dead, lab.raft_address(dead)
        )
        replacing = asyncio.create_task(runner.run(await runner.begin(change)))
        async with asyncio.timeout(120):
            await configured.wait()
        await lab.start(["n5"])
        await asyncio.sleep(1.0)
        lab.crash("n5")  # the joining machine crashes mid-join, then comes back
        await lab.revive("n5")
        async with asyncio.timeout(180):
            await replacing
    finally:
        await writer.stop()
    assert isinstance(coord, MembershipChanges)
    members = await coord.members()
    assert address in members.voters
    assert lab.raft_address(dead) in members.retired
    assert len(members.voters) == 3
    await lab.wait_for("n5 online", lambda o: "n5" in o.members, timeout=30)
    stall = writer.longest_stall(started)
    print(f"replace {dead} by n5: longest write stall {stall:.3f}s over {len(writer.acked)} writes")
    assert stall < MAX_WRITE_STALL
    assert await writer.lost() == []
    holders_never_overlap(lab)
