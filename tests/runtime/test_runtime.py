"""The cluster at run time: real agent processes on loopback, real resource processes.

Every test runs a fresh three-node cluster (`hakeeper.lab.loopback`), drives it through
faults and checks what the resources themselves recorded: an exclusive resource never ran
on two nodes at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hakeeper.errors import CoordError
from hakeeper.lab.holders import describe, overlaps
from hakeeper.lab.loopback import LoopbackCluster, Record, free_port_on, read_records
from hakeeper.model.records import NodeFlags
from hakeeper.runtime.observed import Observed

pytestmark = pytest.mark.slow


def singleton_resources(record: Path, port: int, extra: str = "") -> str:
    app = f"{sys.executable} -m hakeeper.lab.http_app"
    command = f"{app} --port {port} --name singleton --record {record}"
    return f"""
[resources.singleton]
agent = "process"
params = {{ command = "{command}" }}
ops.monitor = {{ interval = "1s", timeout = "5s" }}
{extra}

[resources.web]
agent = "ocf:heartbeat:Dummy"
ops.monitor = {{ interval = "2s", timeout = "10s" }}

[clones.web-clone]
resource = "web"
"""


def runs_on(resource: str, node: str | None = None) -> object:
    def check(observed: Observed) -> bool:
        nodes = observed.running_on(resource)
        return len(nodes) == 1 and (node is None or nodes == [node])

    return check


def assert_never_two_holders(records: list[Record], cluster: LoopbackCluster) -> None:
    """From the service's own records: intervals on different nodes never overlap."""
    found = overlaps(records, cluster.down_since)
    assert not found, f"two holders: {describe(found)}"


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[LoopbackCluster]:
    port = free_port_on(["127.0.0.11", "127.0.0.12", "127.0.0.13"])
    record = tmp_path / "singleton.record"
    cluster = LoopbackCluster(
        tmp_path, singleton_resources(record, port, "migration_threshold = 2\nstickiness = 100")
    )
    cluster.records_path = record  # type: ignore[attr-defined]
    try:
        await cluster.start()
        await cluster.wait_for(
            "the cluster to start everything",
            lambda o: bool(o.running_on("singleton")) and len(o.running_on("web")) == 3,
        )
        yield cluster
    finally:
        await cluster.close()


def records(cluster: LoopbackCluster) -> list[Record]:
    return read_records(cluster.records_path)  # type: ignore[attr-defined]


async def test_a_crashed_nodes_singleton_waits_for_fencing_then_moves(lab: LoopbackCluster) -> None:
    holder = (await lab.observe()).running_on("singleton")[0]
    lab.crash(holder)

    blocked = await lab.wait_for(
        f"{holder} to be seen lost", lambda o: o.state.node(holder).status == "lost"
    )
    assert blocked.running_on("singleton") in ([], [holder])
    await lab.confirm_fenced(holder)
    moved = await lab.wait_for("the singleton to run elsewhere", runs_on("singleton"))

    assert moved.running_on("singleton") != [holder]
    assert_never_two_holders(records(lab), lab)


async def test_a_failed_monitor_restarts_in_place_then_moves_after_the_threshold(
    lab: LoopbackCluster,
) -> None:
    holder = (await lab.observe()).running_on("singleton")[0]
    killed: set[int] = set()

    async def kill_singleton_process() -> None:
        # The restarted process writes its start record once it runs, which may be after
        # the cluster reports it started: wait for a start record not killed yet.
        deadline = time.monotonic() + 60
        while (live := [r for r in records(lab) if r.what == "start"][-1]).pid in killed:
            assert time.monotonic() < deadline, "the restarted singleton wrote no start record"
            await asyncio.sleep(0.1)
        os.kill(live.pid, signal.SIGKILL)
        killed.add(live.pid)
        # A SIGKILLed process writes no stop record: the test writes it, at the kill.
        with lab.records_path.open("a") as out:  # type: ignore[attr-defined]
            out.write(f"stop {live.name} {live.node} {time.monotonic():.6f} {live.pid}\n")

    await kill_singleton_process()
    await lab.wait_for(
        "a restart in place",
        lambda o: (
            runs_on("singleton", holder)(o)
            and any(f.resource == "singleton" and f.count == 1 for f in o.state.failcounts)
        ),
    )
    await kill_singleton_process()
    moved = await lab.wait_for(
        "a move after two failures", lambda o: o.running_on("singleton") not in ([], [holder])
    )

    assert len(moved.running_on("singleton")) == 1
    assert_never_two_holders(records(lab), lab)


async def test_standby_drains_a_node(lab: LoopbackCluster) -> None:
    holder = (await lab.observe()).running_on("singleton")[0]
    store = await lab.store()
    await store.set_node_flags(holder, NodeFlags(standby=True))

    drained = await lab.wait_for(
        f"{holder} to run nothing",
        lambda o: (
            holder not in o.running_on("web")
            and runs_on("singleton")(o)
            and holder not in o.running_on("singleton")
        ),
    )
    assert len(drained.running_on("web")) == 2
    assert_never_two_holders(records(lab), lab)


async def test_a_move_from_the_cli_moves_the_singleton(lab: LoopbackCluster) -> None:
    holder = (await lab.observe()).running_on("singleton")[0]
    target = next(n for n in lab.names if n != holder)
    store = await lab.store()
    await store.set_constraint("move", "singleton", target)

    await lab.wait_for(f"the singleton on {target}", runs_on("singleton", target))
    assert_never_two_holders(records(lab), lab)


async def test_the_cluster_keeps_converging_after_the_controller_crashes(
    lab: LoopbackCluster,
) -> None:
    store = await lab.store()
    elected = await store.controller()
    assert elected is not None
    controller = elected.node
    lab.crash(controller)
    await lab.confirm_fenced(controller)

    def new_controller(o: Observed) -> bool:
        return controller not in o.members

    await lab.wait_for("the crashed controller to leave", new_controller)
    survivor = next(n for n in lab.names if n != controller)
    await store.set_constraint("move", "singleton", survivor)
    await lab.wait_for(f"the singleton on {survivor}", runs_on("singleton", survivor))
    elected = await store.controller()
    assert elected is not None
    assert elected.node != controller
    assert_never_two_holders(records(lab), lab)


async def test_a_graceful_shutdown_hands_over_before_leaving(lab: LoopbackCluster) -> None:
    holder = (await lab.observe()).running_on("singleton")[0]
    await lab.stop(holder)

    after = await lab.wait_for("the singleton elsewhere", runs_on("singleton"))
    assert after.running_on("singleton") != [holder]
    assert after.state.node(holder).status == "offline"
    assert_never_two_holders(records(lab), lab)


async def test_a_revived_node_gets_its_clone_instance_back(lab: LoopbackCluster) -> None:
    lab.crash("n3")
    await lab.confirm_fenced("n3")
    await lab.wait_for("n3's web instance gone", lambda o: "n3" not in o.running_on("web"))
    await lab.revive("n3")
    await lab.wait_for(
        "web on all three again", lambda o: o.running_on("web") == ["n1", "n2", "n3"]
    )


async def test_an_applied_config_is_adopted_by_the_running_cluster(lab: LoopbackCluster) -> None:
    coord = await lab.coordinator()
    extra = '\n[resources.extra]\nagent = "ocf:heartbeat:Dummy"\n'
    await coord.put(lab.keys.config, (lab.config_path.read_text() + extra).encode())

    await lab.wait_for("the new resource to start", runs_on("extra"))


async def test_a_config_naming_a_missing_ocf_agent_is_rejected_and_changes_nothing(
    lab: LoopbackCluster,
) -> None:
    coord = await lab.coordinator()
    bad = '\n[resources.ghost]\nagent = "ocf:heartbeat:NoSuchAgent"\n'
    await coord.put(lab.keys.config, (lab.config_path.read_text() + bad).encode())
    good = '\n[resources.extra]\nagent = "ocf:heartbeat:Dummy"\n'
    await coord.put(lab.keys.config, (lab.config_path.read_text() + good).encode())

    after = await lab.wait_for("the next good config to apply", runs_on("extra"))
    assert after.running_on("ghost") == []
    assert all(lab.running(n) for n in lab.names)
    assert "config_rejected" in lab.tails(200)


async def rotate(secret_file: Path, step: str) -> None:
    """One step of `hakeeper secret rotate`, as an operator runs it."""
    argv = [sys.executable, "-m", "hakeeper", "secret", "rotate", step, "--secret-file"]
    done = await asyncio.to_thread(
        subprocess.run, [*argv, str(secret_file)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


async def test_a_secret_rotation_keeps_quorum_and_every_resource_running(
    lab: LoopbackCluster,
) -> None:
    # The lab's nodes share one secret file, so every step reaches all of them at once; a
    # group whose hosts step one by one is tests/coord/test_secret_rotation.py's.
    before = await lab.observe()
    agents = {n: lab.pid(n) for n in lab.names}
    starts = [r for r in records(lab) if r.what == "start"]
    coord = await lab.coordinator()
    stop = asyncio.Event()

    async def write_every_100ms() -> float:
        """The longest time between two acknowledged writes while the secret rotates."""
        longest, last = 0.0, time.monotonic()
        for _ in range(1200):  # bounded: 2 minutes at most
            if stop.is_set():
                break
            try:
                await asyncio.wait_for(coord.put(f"{lab.keys.root}probe", b"x"), 10)
            except (CoordError, TimeoutError):
                pass
            else:
                longest, last = max(longest, time.monotonic() - last), time.monotonic()
            await asyncio.sleep(0.1)
        return longest

    writer = asyncio.create_task(write_every_100ms())
    try:
        for step in ("add", "promote", "drop"):
            await asyncio.sleep(2.0)
            await rotate(lab.secret_file, step)
        await asyncio.sleep(5.0)  # members close the links proved with the old secret, redial
    finally:
        stop.set()
        longest = await writer

    assert len(lab.secret_file.read_text().split()) == 1
    assert longest < 5.0, f"writes stopped for {longest:.1f} s during the rotation"
    assert {n: lab.pid(n) for n in lab.names} == agents
    after = await lab.observe()
    assert after.running_on("singleton") == before.running_on("singleton")
    assert after.running_on("web") == ["n1", "n2", "n3"]
    assert [r for r in records(lab) if r.what == "start"] == starts
