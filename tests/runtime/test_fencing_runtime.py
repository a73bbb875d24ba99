"""Chaos on a real loopback cluster with real fence devices (issue 5).

The singleton's own start/stop records (system-wide monotonic clock) are the ground truth;
a holder killed without its own stop line ends when its node was crashed or confirmed off by
the fence device (`LoopbackCluster.down_since`). Any overlap of two holders fails the test.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from hakeeper.agents.procfs import process_start_time
from hakeeper.lab.loopback import LoopbackCluster, free_port_on, read_records
from hakeeper.model.events import NodeFenced
from hakeeper.policy.scheduler import schedule
from hakeeper.runtime.observed import Observed
from tests.conftest import require_binary
from tests.runtime.test_runtime import assert_never_two_holders as check_records
from tests.runtime.test_runtime import runs_on, singleton_resources

pytestmark = pytest.mark.slow

ADDRESSES = ["127.0.0.11", "127.0.0.12", "127.0.0.13"]


@asynccontextmanager
async def cluster(
    tmp_path: Path,
    *,
    fence_scope: str = "node",
    extra: str = "",
    device: bool = True,
    suspect_after: float | None = None,
    timing: str = "fast",
) -> AsyncIterator[LoopbackCluster]:
    record = tmp_path / "singleton.record"
    resources = singleton_resources(record, free_port_on(ADDRESSES), "stickiness = 100") + extra
    lab = LoopbackCluster(
        tmp_path, resources, fencing=True, fence_device=device, fence_scope=fence_scope,
        suspect_after=suspect_after, profile=timing,
    )  # fmt: skip
    lab.records_path = record  # type: ignore[attr-defined]
    try:
        await lab.start()
        await lab.wait_for(
            "the cluster to start everything",
            lambda o: bool(o.running_on("singleton")) and len(o.running_on("web")) == 3,
        )
        yield lab
    finally:
        await lab.close()


def assert_never_two_holders(lab: LoopbackCluster) -> None:
    check_records(read_records(lab.records_path), lab)  # type: ignore[attr-defined]


def starts_on(lab: LoopbackCluster, node: str, after: float) -> list[float]:
    records = read_records(lab.records_path)  # type: ignore[attr-defined]
    return [r.at for r in records if r.what == "start" and r.node == node and r.at > after]


async def fence_events(lab: LoopbackCluster, node: str) -> list[NodeFenced]:
    store = await lab.store()
    events = await store.event_log("test").read()
    return [e for e in events if isinstance(e, NodeFenced) and e.node == node]


def stops_on(lab: LoopbackCluster, node: str, after: float) -> int:
    records = read_records(lab.records_path)  # type: ignore[attr-defined]
    return sum(1 for r in records if r.what == "stop" and r.node == node and r.at > after)


async def until(check: Callable[[], bool], what: str, timeout: float) -> None:
    async def wrapped() -> bool:
        return check()

    await until_async(wrapped, what, timeout)


async def until_async(check: Callable[[], Awaitable[bool]], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(0.05)


def alive(pid: int | None, start_time: int | None) -> bool:
    return pid is not None and process_start_time(pid) == start_time


def elsewhere(node: str) -> Callable[[Observed], bool]:
    def check(o: Observed) -> bool:
        nodes = o.running_on("singleton")
        return len(nodes) == 1 and nodes != [node]

    return check


async def freeze_the_holder_until_the_singleton_moves(lab: LoopbackCluster) -> str:
    """Freeze the singleton's node, wait for the singleton elsewhere; the frozen agent must
    have been powered off by then. Returns the frozen node."""
    holder = (await lab.observe()).running_on("singleton")[0]
    pid = lab.pid(holder)
    start_time = process_start_time(pid) if pid else None
    lab.freeze(holder)

    await lab.wait_for("the singleton to run elsewhere", elsewhere(holder), timeout=90)

    assert not alive(pid, start_time), "the fence device left the frozen agent running"
    return holder


async def test_a_frozen_holder_is_powered_off_by_the_fence_device_and_the_singleton_moves(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path) as lab:
        holder = await freeze_the_holder_until_the_singleton_moves(lab)

        events = await fence_events(lab, holder)
        assert any(e.ok and e.device == "lab" for e in events), events
        assert_never_two_holders(lab)
        assert_epochs_increase(lab)


async def test_a_silent_holder_is_fenced_on_suspicion_and_removed_before_its_lease_expires(
    tmp_path: Path,
) -> None:
    # The wan profile's 10 s lease leaves a loaded machine ample time to suspect (3 s, or 3 s
    # after a new Raft leader) and fence before the lease would expire on its own.
    async with cluster(tmp_path, suspect_after=3.0, timing="wan") as lab:
        holder = await freeze_the_holder_until_the_singleton_moves(lab)

        coord = await lab.coordinator()
        mark = await coord.get(lab.keys.fenced(holder))
        assert mark is not None
        assert json.loads(mark.value).get("suspected") is True, mark
        assert_never_two_holders(lab)
        assert_epochs_increase(lab)


def assert_epochs_increase(lab: LoopbackCluster) -> None:
    """Each new holder was started under a newer fencing token than the one before it."""
    records = read_records(lab.records_path)  # type: ignore[attr-defined]
    starts = [r for r in sorted(records, key=lambda r: r.at) if r.what == "start"]
    assert len({r.node for r in starts}) >= 2
    assert all(r.epoch > 0 for r in starts), starts
    for before, after in itertools.pairwise(starts):
        assert after.epoch >= before.epoch, f"fencing token went backwards: {before} {after}"
        if after.node != before.node:
            assert after.epoch > before.epoch, f"a new holder kept the old token: {after}"


async def test_a_holder_that_loses_quorum_stops_before_its_lease_can_expire_then_rejoins(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path) as lab:
        holder = (await lab.observe()).running_on("singleton")[0]
        others = [n for n in lab.names if n != holder]
        ttl = lab.spec.timing.member_ttl
        for node in others:
            lab.freeze(node)
        cut_at = time.monotonic()
        try:
            await until(lambda: stops_on(lab, holder, cut_at) > 0, "the self-fence stop", 30)
        finally:
            for node in others:
                lab.thaw(node)
        stop_at = next(
            r.at
            for r in read_records(lab.records_path)  # type: ignore[attr-defined]
            if r.what == "stop" and r.node == holder and r.at > cut_at
        )
        # Its last renewal was sent before the cut, so its lease lives at most TTL past it.
        assert stop_at - cut_at < ttl, f"stopped {stop_at - cut_at:.3f}s after the cut"

        await lab.wait_for(
            "every node back, web everywhere and the singleton running once",
            lambda o: (
                len(o.members) == 3
                and len(o.running_on("singleton")) == 1
                and len(o.running_on("web")) == 3
            ),
            timeout=90,
        )
        await asyncio.sleep(3)  # no flapping: nothing starts or stops once settled
        before = len(read_records(lab.records_path))  # type: ignore[attr-defined]
        await asyncio.sleep(3)
        assert len(read_records(lab.records_path)) == before  # type: ignore[attr-defined]
        assert_never_two_holders(lab)


async def test_a_paused_agent_fenced_off_its_service_finds_itself_fenced_when_resumed(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path, fence_scope="resources") as lab:
        holder = (await lab.observe()).running_on("singleton")[0]
        frozen_at = time.monotonic()
        lab.freeze(holder)
        await lab.wait_for("the singleton to run elsewhere", elsewhere(holder), timeout=90)

        lab.thaw(holder)

        await lab.wait_for(
            f"{holder} to rejoin with its fenced mark cleared and web back on it",
            lambda o: (
                holder in o.members
                and not o.state.node(holder).fenced
                and len(o.running_on("web")) == 3
            ),
            timeout=90,
        )
        assert elsewhere(holder)(await lab.observe())
        assert starts_on(lab, holder, frozen_at) == [], "the resumed node served the singleton"
        assert_never_two_holders(lab)


async def test_killing_the_controller_mid_transition_still_converges_safely(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path) as lab:
        store = await lab.store()
        elected = await store.controller()
        assert elected is not None
        controller = elected.node
        holder = (await lab.observe()).running_on("singleton")[0]
        target = next(n for n in lab.names if n not in (holder, controller))
        moved_at = time.monotonic()

        await store.set_constraint("move", "singleton", target)
        # Crash the controller between the waves of the move: after the stop, before the start.
        await until(lambda: stops_on(lab, holder, moved_at) > 0, "the singleton's stop", 60)
        lab.crash(controller)

        await lab.wait_for(f"the singleton on {target}", runs_on("singleton", target), timeout=90)

        async def new_controller() -> bool:
            now = await store.controller()
            return now is not None and now.node != controller

        await until_async(new_controller, "a new controller", 60)
        assert starts_on(lab, target, moved_at)
        assert_never_two_holders(lab)


DUMMY_DEVICE = """
[fencing.devices.dummy]
agent = "fence_dummy"
params = {{ type = "file", status_file = "{status}" }}
host_argument = "none"
timeout = 30
"""


async def test_the_real_fence_dummy_is_driven_through_the_protocol_before_recovery(
    tmp_path: Path,
) -> None:
    require_binary("fence_dummy")
    status = tmp_path / "dummy.status"
    status.write_text("on")  # fence_dummy reads the word itself: no newline
    async with cluster(tmp_path, device=False, extra=DUMMY_DEVICE.format(status=status)) as lab:
        holder = (await lab.observe()).running_on("singleton")[0]
        lab.crash(holder)

        await lab.wait_for("the singleton to run elsewhere", elsewhere(holder), timeout=90)

        assert status.read_text().strip() == "off"
        assert any(e.ok and e.device == "dummy" for e in await fence_events(lab, holder))
        assert_never_two_holders(lab)


async def test_a_failing_fence_device_keeps_the_singleton_blocked_and_is_retried(
    tmp_path: Path,
) -> None:
    # A lab device that knows no node: every "off" exits 1, as a dead IPMI would.
    extra = f"""
[fencing.devices.broken]
agent = "fence_hakeeper_lab"
params = {{ targets_dir = "{tmp_path / "no-targets"}" }}
retries = 0
"""
    async with cluster(tmp_path, device=False, extra=extra) as lab:
        holder = (await lab.observe()).running_on("singleton")[0]
        lab.crash(holder)

        async def failed_attempts() -> int:
            return sum(1 for e in await fence_events(lab, holder) if not e.ok)

        async def retried() -> bool:
            return await failed_attempts() >= 2

        await until_async(retried, "a failed fence to be retried", 60)
        blocked = await lab.observe()
        assert blocked.running_on("singleton") in ([], [holder])
        # What `hakeeper status` shows: the scheduler still wants the fence first.
        decisions = schedule(lab.spec, blocked.state).decisions
        assert any(d.kind == "fence" and d.node == holder for d in decisions), decisions

        await lab.confirm_fenced(holder)
        await lab.wait_for("the singleton to run elsewhere", elsewhere(holder), timeout=60)
        assert_never_two_holders(lab)
