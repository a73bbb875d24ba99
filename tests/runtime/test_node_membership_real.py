"""Nodes added and removed on a real cluster: one agent process per node on loopback, the
embedded Raft group, a writer and an exclusive service running throughout.

One cluster for the module, driven through 3 → 5 → 3 nodes: an add whose machine never
starts is undone (`node remove` of the never-joined node); the new node's daemon joins with
``agent --join`` while `NodeChanges` (what ``hakeeper node add`` runs) makes it a voter; a
second node joins while the controller is SIGKILLed and the command dies mid-change (run
again, it finishes); the node that runs the service is removed (its service moves first, its
daemon stops by itself, exit 0); another is removed with the controller killed after the
drain, before the voter leaves; a removed node restarted with its old data is refused; a
SIGKILLed node is replaced. No acknowledged write is lost, writes stall for less than one
election's worth, the service never runs twice, and no change is ever left half-recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from hakeeper.config.loader import load_spec
from hakeeper.coord.base import ChangeInProgress, Coordinator, MembershipChanges
from hakeeper.errors import CoordError, NoQuorum
from hakeeper.lab.holders import describe, overlaps
from hakeeper.lab.loopback import LoopbackCluster, free_port_on, node_address, read_records
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
        # Besides the cancel: on Python 3.11, asyncio.wait_for (under the client's calls) can
        # swallow a cancel that arrives as its call completes, and the loop would go on.
        self._stopping = False

    async def _run(self) -> None:
        for i in range(100_000):
            if self._stopping:
                return
            with contextlib.suppress(CoordError, TimeoutError):
                async with asyncio.timeout(10.0):
                    await self.coord.put(f"/test/writes/{i:06d}", b"x")
                self.acked.append((time.monotonic(), i))
            await asyncio.sleep(0.02)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="writer")

    async def stop(self) -> None:
        self._stopping = True
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
    port = free_port_on([node_address(i) for i in range(1, 7)])
    cluster = LoopbackCluster(base, resources(base / "singleton.record", port))
    try:
        await cluster.start()
        await cluster.wait_for("the service to start", lambda o: bool(o.running_on("singleton")))
        yield cluster
    finally:
        await cluster.close()


def changes(
    lab: LoopbackCluster,
    coord: Coordinator,
    configured: asyncio.Event | None = None,
    *,
    join: float = 120.0,
    say: Callable[[str], None] = lambda line: None,
    **kw: bool,
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
        say=say,
        limits=ChangeLimits(drain=120.0, join=join, gone=30.0, poll=0.2),
        **kw,
    )


def holders_never_overlap(lab: LoopbackCluster) -> None:
    found = overlaps(read_records(lab.base_dir / "singleton.record"), lab.down_since)
    assert not found, f"two holders: {describe(found)}"


async def no_change_and_voters(lab: LoopbackCluster, coord: Coordinator, voters: int) -> None:
    """No change recorded or in flight in the group, and exactly ``voters`` voters."""
    assert isinstance(coord, MembershipChanges)
    members = await coord.members()
    assert members.pending is None, members
    assert len(members.voters) == voters, members
    assert await ClusterStore(coord, lab.keys).node_changes().current() is None


async def controller_node(lab: LoopbackCluster) -> str:
    store = await lab.store()
    for _ in range(300):
        with contextlib.suppress(CoordError):
            current = await store.controller()
            if current is not None:
                return current.node
        await asyncio.sleep(0.2)
    raise AssertionError(f"no controller in 60s\n{lab.tails()}")


async def client(lab: LoopbackCluster) -> Coordinator:
    """The test's client on the cluster file as the last change left it, as the operator's
    command rewrites its file: a client that knows only the first three voters cannot reach
    a leader elected among the nodes added since."""
    spec = load_spec(lab.config_path)
    if spec.nodes != lab.spec.nodes:
        await (await lab.coordinator()).close()
        lab._coord = None
        lab.spec = spec
    return await lab.coordinator()


class Interrupted(Exception):
    """The command dies here (its process killed): nothing after this line runs."""


def die_at(prefix: str) -> Callable[[str], None]:
    def say(line: str) -> None:
        if line.startswith(prefix):
            raise Interrupted(line)

    return say


async def test_an_add_whose_machine_never_starts_is_undone_and_the_voters_never_notice(
    lab: LoopbackCluster,
) -> None:
    coord = await client(lab)
    assert isinstance(coord, MembershipChanges)
    voters = (await coord.members()).voters
    writer = Writer(coord)
    writer.start()
    started = time.monotonic()
    try:
        # n9's machine is never started: its address is on loopback, nothing listens there.
        address = f"{node_address(9)}:{lab.spec.nodes[0].raft_port}"
        change = NodeChange("add", "n9", address, "configure", time.time())
        adding = changes(lab, coord, join=8.0)
        with pytest.raises(NoQuorum, match="hakeeper node remove n9"):
            await adding.run(await adding.begin(change))
        assert "[nodes.n9]" in lab.config_path.read_text()
        undoing = changes(lab, coord)
        recorded = await undoing.in_flight()
        assert recorded is not None
        await undoing.undo_add(recorded)
    finally:
        await writer.stop()
    members = await coord.members()
    assert members.voters == voters
    assert address not in members.retired  # never a member: nothing to retire
    await no_change_and_voters(lab, coord, 3)
    assert "[nodes.n9]" not in lab.config_path.read_text()
    assert await coord.get(lab.keys.fenced("n9")) is None
    assert await coord.has_quorum()
    stall = writer.longest_stall(started)
    print(f"add n9 undone: longest write stall {stall:.3f}s over {len(writer.acked)} writes")
    assert stall < MAX_WRITE_STALL, lab.tails()
    assert await writer.lost() == []


async def test_a_new_node_joins_as_a_learner_then_votes_and_runs_resources(
    lab: LoopbackCluster,
) -> None:
    coord = await client(lab)
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


async def test_an_add_finishes_after_the_controller_and_the_command_die_mid_change(
    lab: LoopbackCluster,
) -> None:
    coord = await client(lab)
    writer = Writer(coord)
    writer.start()
    started = time.monotonic()
    try:
        address = lab.new_node("n5")
        # The command dies once the file names n5 and the voter step is recorded, before n5
        # is a learner (it cannot vote yet); the controller dies then too.
        first = changes(lab, coord, say=die_at("waiting for n5's daemon"))
        change = NodeChange("add", "n5", address, "configure", time.time())
        with pytest.raises(Interrupted):
            await first.run(await first.begin(change))
        controller = await controller_node(lab)
        lab.crash(controller)
        recorded = await first.in_flight()
        assert recorded is not None
        assert recorded.step == "add_voter"
        other = NodeChange("remove", "n2", lab.raft_address("n2"), "check_fenced", 0.0)
        with pytest.raises(ChangeInProgress, match="add n5 is in flight"):
            await changes(lab, coord).begin(other)
        await lab.start(["n5"])
        again = changes(lab, coord)
        async with asyncio.timeout(180):
            await again.run(await again.begin(change))
        await lab.revive(controller)
    finally:
        await writer.stop()
    await no_change_and_voters(lab, coord, 5)
    await lab.wait_for(
        "five nodes online and the service running",
        lambda o: len(o.members) == 5 and len(o.running_on("singleton")) == 1,
        timeout=120,
    )
    stall = writer.longest_stall(started)
    print(f"add n5, {controller} killed: longest write stall {stall:.3f}s")
    assert stall < MAX_WRITE_STALL, lab.tails()
    assert await writer.lost() == []
    holders_never_overlap(lab)


async def test_removing_the_node_that_runs_the_service_moves_it_first_and_stops_the_daemon(
    lab: LoopbackCluster,
) -> None:
    coord = await client(lab)
    (holder,) = (await lab.observe()).running_on("singleton")
    lab.old_config = lab.config_path.read_text()  # type: ignore[attr-defined]
    assert isinstance(coord, MembershipChanges)
    voters = len((await coord.members()).voters)  # 5: the module grew the cluster to 3 → 5
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
    assert len(members.voters) == voters - 1
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


async def test_a_remove_finishes_after_the_controller_dies_between_drain_and_voter_removal(
    lab: LoopbackCluster,
) -> None:
    coord = await client(lab)
    removed: str = lab.removed  # type: ignore[attr-defined]
    controller = await controller_node(lab)
    (holder,) = (await lab.observe()).running_on("singleton")
    leaving = next(n for n in lab.names if n not in (removed, controller, holder))
    writer = Writer(coord)
    writer.start()
    started = time.monotonic()
    try:
        first = changes(lab, coord, say=die_at("removing the Raft voter"))
        change = NodeChange("remove", leaving, lab.raft_address(leaving), "check_fenced", 0.0)
        with pytest.raises(Interrupted):
            await first.run(await first.begin(change))
        recorded = await first.in_flight()
        assert recorded is not None
        assert recorded.step == "remove_voter"
        assert isinstance(coord, MembershipChanges)
        assert lab.raft_address(leaving) in (await coord.members()).voters  # drained, votes
        lab.crash(controller)
        again = changes(lab, coord)
        async with asyncio.timeout(180):
            await again.run(await again.begin(change))
        code = await lab.exited(leaving, 90)
        await lab.revive(controller)
    finally:
        await writer.stop()
    assert code == 0, lab.tails()
    assert lab.raft_address(leaving) in (await coord.members()).retired
    await no_change_and_voters(lab, coord, 3)
    assert f"[nodes.{leaving}]" not in lab.config_path.read_text()
    await lab.wait_for(
        f"{controller} back and the service running",
        lambda o: controller in o.members and len(o.running_on("singleton")) == 1,
        timeout=120,
    )
    stall = writer.longest_stall(started)
    print(f"remove {leaving}, {controller} killed: longest write stall {stall:.3f}s")
    assert stall < MAX_WRITE_STALL, lab.tails()
    assert await writer.lost() == []
    holders_never_overlap(lab)
    lab.removed_too = leaving  # type: ignore[attr-defined]


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
    coord = await client(lab)
    assert await coord.has_quorum()
    assert isinstance(coord, MembershipChanges)
    assert lab.raft_address(removed) not in (await coord.members()).voters


async def test_a_killed_node_is_replaced_by_a_fresh_machine_even_if_the_new_one_crashes_joining(
    lab: LoopbackCluster,
) -> None:
    coord = await client(lab)
    (holder,) = (await lab.observe()).running_on("singleton")
    gone = (lab.removed, lab.removed_too)  # type: ignore[attr-defined]
    dead = next(n for n in lab.names if n not in (holder, *gone))
    lab.crash(dead)  # SIGKILL, as a power cut: its machine is gone for good
    writer = Writer(coord)
    writer.start()
    started = time.monotonic()
    try:
        address = lab.new_node("n6")
        configured = asyncio.Event()
        runner = changes(lab, coord, configured, confirm_off=True)
        change = NodeChange(
            "replace", "n6", address, "check_fenced", 0.0, dead, lab.raft_address(dead)
        )
        replacing = asyncio.create_task(runner.run(await runner.begin(change)))
        async with asyncio.timeout(120):
            await configured.wait()
        await lab.start(["n6"])
        await asyncio.sleep(1.0)
        lab.crash("n6")  # the joining machine crashes mid-join, then comes back
        await lab.revive("n6")
        async with asyncio.timeout(180):
            await replacing
    finally:
        await writer.stop()
    assert isinstance(coord, MembershipChanges)
    members = await coord.members()
    assert address in members.voters
    assert lab.raft_address(dead) in members.retired
    assert len(members.voters) == 3
    await lab.wait_for("n6 online", lambda o: "n6" in o.members, timeout=30)
    stall = writer.longest_stall(started)
    print(f"replace {dead} by n6: longest write stall {stall:.3f}s over {len(writer.acked)} writes")
    assert stall < MAX_WRITE_STALL
    assert await writer.lost() == []
    holders_never_overlap(lab)
