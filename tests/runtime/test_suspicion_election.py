"""Fence on suspicion when the crashed node was also the Raft leader (issue 20 item 5).

The engine never counts a silence from before the current leader took office; these tests play
that engine on a virtual clock (`ElectingCoordinator`) and check that the crashed leader is
suspected ``grace`` after the election, by its beats, while a live member that has not yet
renewed under the new leader is not."""

from __future__ import annotations

import asyncio
import random

import pytest

from hakeeper.coord.base import Lease, Put
from hakeeper.fencing.topology import Fencer
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.timing import profile
from hakeeper.runtime.events_log import EventLog
from hakeeper.runtime.fence_plan import fencer_of
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.store import ClusterStore
from hakeeper.runtime.suspicion import BeatTimes, SuspicionWatch, grace
from tests.fakes import LocalCoordinator, VirtualClock
from tests.runtime.test_suspicion import AFTER, Runner, cluster_spec, no_sleep

FAST = profile("fast")
GRACE = grace(AFTER, FAST)
CRASH = 1000.05  # n2, the Raft leader and the node holding the VIP, stops
ELECTED = 1000.3  # the survivors' new leader takes office


class ElectingCoordinator(LocalCoordinator):
    """The embedded engine's measure of silence, on a virtual clock: from the later of the
    lease's last renewal and the current leader's accession (`RaftCoordinator`)."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self.clock = clock
        self.leader_since = clock()
        self.renewed: dict[int, float] = {}

    async def grant(self, ttl: float) -> Lease:
        lease = await super().grant(ttl)
        self.renewed[lease.id] = self.clock()
        return lease

    async def keepalive(self, lease: Lease) -> bool:
        self.renewed[lease.id] = self.clock()
        return await super().keepalive(lease)

    async def lease_renewed_ago(self, lease_id: int) -> float | None:
        if lease_id not in self.state.leases:
            return None
        now = self.clock()
        return min(now - self.renewed[lease_id], now - self.leader_since)


class Lab:
    def __init__(self) -> None:
        self.clock = VirtualClock()
        self.coord = ElectingCoordinator(self.clock)
        self.keys = KeySpace("t")
        self.leases: dict[str, Lease] = {}
        self.runner = Runner()

    async def start(self, *, beats: bool = True) -> None:
        for node in ("n1", "n2", "n3"):
            self.leases[node] = await self.coord.grant(1.0)
            await self.coord.put(self.keys.member(node), b"{}", self.leases[node])
        await self.coord.txn([], [Put(self.keys.controller, b"n1", self.leases["n1"].id)])
        if beats:
            for node in self.leases:
                await self.renew(node)

    async def renew(self, node: str) -> None:
        """What a member's renewal loop does: keepalive, then its beat."""
        await self.coord.keepalive(self.leases[node])
        await self.coord.put(self.keys.beat(node), b"1", self.leases[node])

    def watch(self, node: str) -> SuspicionWatch:
        def fencer(spec: ClusterSpec) -> Fencer | None:
            return fencer_of(spec, runner=self.runner, rng=random.Random(1), sleep=no_sleep)

        return SuspicionWatch(
            node=node, store=ClusterStore(self.coord, self.keys), spec=cluster_spec,
            events=EventLog(self.coord, self.keys, node), fencer=fencer, timing=FAST,
            clock=self.clock,
        )  # fmt: skip

    def elect(self) -> None:
        """n2 crashed at CRASH; the survivors elect a leader and renew under it at once."""
        self.clock.now = ELECTED
        self.coord.leader_since = ELECTED


@pytest.fixture
async def lab() -> Lab:
    lab = Lab()
    await lab.start()
    return lab


async def test_the_crashed_raft_leader_is_fenced_grace_after_the_election(lab: Lab) -> None:
    watch = lab.watch("n1")
    assert await watch.check(cluster_spec(), AFTER) == []  # the beats are seen at 1000.0
    lab.elect()
    for node in ("n1", "n3"):
        await lab.renew(node)

    lab.clock.now = ELECTED + GRACE + 0.01  # the engine alone would wait until ELECTED + AFTER

    assert await watch.check(cluster_spec(), AFTER) == ["n2"]
    assert lab.runner.calls == [("off", "n2")]


async def test_a_live_member_not_yet_renewed_under_the_new_leader_is_not_suspected(
    lab: Lab,
) -> None:
    watch = lab.watch("n1")
    await watch.check(cluster_spec(), AFTER)
    lab.elect()
    lab.clock.now = ELECTED + GRACE - 0.01  # n3's retried renewal has not landed yet

    assert await watch.check(cluster_spec(), AFTER) == []
    assert lab.runner.calls == []


async def test_a_member_renewing_under_the_new_leader_is_not_suspected(lab: Lab) -> None:
    watch = lab.watch("n1")
    await watch.check(cluster_spec(), AFTER)
    lab.elect()
    lab.clock.now = ELECTED + GRACE / 2
    await lab.renew("n3")
    lab.clock.now = ELECTED + GRACE + 0.05

    assert await watch.check(cluster_spec(), AFTER) == ["n2"]  # n2 only, never n3
    assert lab.runner.calls == [("off", "n2")]


async def test_without_beats_the_engine_measure_alone_decides() -> None:
    lab = Lab()
    await lab.start(beats=False)  # members of a release that writes no beats
    watch = lab.watch("n1")
    await watch.check(cluster_spec(), AFTER)
    lab.elect()
    lab.clock.now = ELECTED + GRACE / 2
    await lab.coord.keepalive(lab.leases["n3"])

    lab.clock.now = ELECTED + GRACE + 0.01
    assert await watch.check(cluster_spec(), AFTER) == []
    lab.clock.now = ELECTED + AFTER + 0.01
    assert await watch.check(cluster_spec(), AFTER) == ["n2"]


def test_grace_is_the_steady_slack_of_a_renewal_plus_two_engine_heartbeats() -> None:
    assert grace(AFTER, FAST) == pytest.approx(AFTER - FAST.renew_interval + 2 * FAST.heartbeat)
    assert grace(AFTER, FAST) < AFTER


def test_a_beat_counts_from_when_this_node_first_saw_it() -> None:
    clock = VirtualClock()
    beats = BeatTimes(clock)
    beats.saw("n2", 5)
    clock.advance(0.2)
    beats.saw("n2", 5)  # the same beat read again: still counted from its first sight
    assert beats.silence("n2") == pytest.approx(0.2)
    beats.saw("n2", 6)
    assert beats.silence("n2") == 0.0


def test_a_member_whose_beat_key_is_gone_has_no_beat_to_count() -> None:
    beats = BeatTimes(VirtualClock())
    beats.saw("n2", 5)
    beats.keep_only({"n3"})
    assert beats.silence("n2") is None


async def test_beats_wake_no_reader_of_the_cluster_records(lab: Lab) -> None:
    store = ClusterStore(lab.coord, lab.keys)
    changes = store.changes()
    seen = asyncio.ensure_future(anext(changes))
    await asyncio.sleep(0)
    await lab.renew("n2")
    await asyncio.sleep(0)
    assert not seen.done()
    revision = await lab.coord.put(lab.keys.attribute("n2", "reboot", "x"), b"1")
    assert await asyncio.wait_for(seen, 5.0) == revision
    await changes.aclose()


async def test_the_beats_of_members_arrive_in_order(lab: Lab) -> None:
    beats = ClusterStore(lab.coord, lab.keys).beat_changes()
    first = asyncio.ensure_future(anext(beats))
    await asyncio.sleep(0)
    await lab.renew("n3")
    node, revision = await asyncio.wait_for(first, 5.0)
    beat = await lab.coord.get(lab.keys.beat("n3"))
    assert beat is not None
    assert (node, revision) == ("n3", beat.mod_revision)
    await beats.aclose()
