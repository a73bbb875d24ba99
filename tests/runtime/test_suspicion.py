"""Fence on suspicion (`hakeeper.runtime.suspicion`) against the in-process engine."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field

import pytest

from hakeeper.config.loader import spec_from_text
from hakeeper.coord.base import Lease, Put
from hakeeper.fencing.device import AttemptResult, FenceAction, FenceDevice
from hakeeper.fencing.topology import Fencer
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.events import NodeFenced
from hakeeper.model.timing import profile
from hakeeper.runtime.events_log import EventLog
from hakeeper.runtime.fence_plan import fencer_of
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.store import ClusterStore
from hakeeper.runtime.suspicion import SuspicionWatch, quiet_for
from tests.fakes import LocalCoordinator

AFTER = 0.3


def cluster_spec(n2_kind: str = "power") -> ClusterSpec:
    return spec_from_text(
        f"""
[cluster]
profile = "fast"
[nodes.n1]
[nodes.n2]
[nodes.n3]
[fencing]
suspect_after = {AFTER}
[fencing.devices.pdu]
agent = "fence_pdu"
host_list = ["n1", "n3"]
[fencing.devices.n2dev]
agent = "fence_n2"
host_list = ["n2"]
kind = "{n2_kind}"
""",
        "test",
    )


@dataclass
class Runner:
    ok: bool = True
    calls: list[tuple[FenceAction, str | None]] = field(default_factory=list)

    async def run(
        self, device: FenceDevice, action: FenceAction, node: str | None
    ) -> AttemptResult:
        self.calls.append((action, node))
        return AttemptResult(device.name, action, node or "", self.ok, 0 if self.ok else 1, 0.0, "")


async def no_sleep(_: float) -> None:
    return None


@dataclass
class Cluster:
    coord: LocalCoordinator
    keys: KeySpace
    leases: dict[str, Lease]
    runner: Runner

    def watch(self, node: str) -> SuspicionWatch:
        def fencer(spec: ClusterSpec) -> Fencer | None:
            return fencer_of(spec, runner=self.runner, rng=random.Random(1), sleep=no_sleep)

        return SuspicionWatch(
            node=node, store=ClusterStore(self.coord, self.keys), spec=cluster_spec,
            events=EventLog(self.coord, self.keys, node), fencer=fencer, timing=profile("fast"),
        )  # fmt: skip

    def silence(self, node: str) -> None:
        self.coord.state.renewed_at[self.leases[node].id] -= 1.0

    async def keys_present(self) -> set[str]:
        return {kv.key for kv in await self.coord.range(self.keys.root)}


async def make_cluster(controller: str = "n1", *, fence_ok: bool = True) -> Cluster:
    coord, keys = LocalCoordinator(), KeySpace("t")
    leases = {}
    for node in ("n1", "n2", "n3"):
        leases[node] = await coord.grant(1.0)
        await coord.put(keys.member(node), b"{}", leases[node])
    await coord.txn([], [Put(keys.controller, controller.encode(), leases[controller].id)])
    return Cluster(coord, keys, leases, Runner(ok=fence_ok))


async def test_controller_fences_and_removes_a_silent_member() -> None:
    c = await make_cluster()
    c.silence("n2")

    removed = (await c.watch("n1").check(cluster_spec(), AFTER)).removed

    assert removed == ("n2",)
    assert c.runner.calls == [("off", "n2")]
    present = await c.keys_present()
    assert c.keys.member("n2") not in present
    assert {c.keys.member("n1"), c.keys.member("n3"), c.keys.controller} <= present
    mark = await c.coord.get(c.keys.fenced("n2"))
    assert mark is not None
    assert json.loads(mark.value)["suspected"] is True
    assert c.leases["n2"].id not in c.coord.state.leases


async def test_removal_and_fenced_mark_land_in_one_revision() -> None:
    c = await make_cluster()
    c.silence("n2")

    await c.watch("n1").check(cluster_spec(), AFTER)

    mark = await c.coord.get(c.keys.fenced("n2"))
    assert mark is not None
    deleted = [e for e in c.coord.state.history if e.type == "delete"]
    assert deleted[0].kv.key == c.keys.member("n2")
    assert deleted[0].revision == mark.mod_revision


async def test_the_fence_is_recorded_in_the_event_log() -> None:
    c = await make_cluster()
    c.silence("n2")

    await c.watch("n1").check(cluster_spec(), AFTER)

    events = await EventLog(c.coord, c.keys, "reader").read()
    fenced = [e for e in events if isinstance(e, NodeFenced)]
    assert [(e.node, e.ok, e.device) for e in fenced] == [("n2", True, "n2dev")]


async def test_a_member_whose_fence_failed_stays_and_is_not_fenced_again_at_once() -> None:
    c = await make_cluster(fence_ok=False)
    c.silence("n2")
    watch = c.watch("n1")

    assert (await watch.check(cluster_spec(), AFTER)).removed == ()
    assert (await watch.check(cluster_spec(), AFTER)).removed == ()

    assert c.keys.member("n2") in await c.keys_present()
    assert await c.coord.get(c.keys.fenced("n2")) is None
    assert c.runner.calls == [("off", "n2")] * 3  # one fence: 1 + 2 retries of the device


async def test_a_fabric_device_leaves_the_member_to_its_lease() -> None:
    c = await make_cluster()
    c.silence("n2")

    assert (await c.watch("n1").check(cluster_spec("fabric"), AFTER)).removed == ()

    assert c.runner.calls == []
    assert c.keys.member("n2") in await c.keys_present()


async def test_a_node_that_is_not_controller_leaves_ordinary_members_to_the_controller() -> None:
    c = await make_cluster()
    c.silence("n2")

    assert (await c.watch("n3").check(cluster_spec(), AFTER)).removed == ()

    assert c.runner.calls == []


async def test_the_first_live_member_removes_a_silent_controller_with_its_controller_key() -> None:
    c = await make_cluster()
    c.silence("n1")

    assert (await c.watch("n2").check(cluster_spec(), AFTER)).removed == ("n1",)

    present = await c.keys_present()
    assert c.keys.member("n1") not in present
    assert c.keys.controller not in present


async def test_other_members_leave_a_silent_controller_to_the_first_until_twice_as_long() -> None:
    c = await make_cluster()
    # Silent 1.2 x AFTER as the look begins: past AFTER, short of twice it. Set just before the
    # look, not relative to the lease's grant: a slow setup on a loaded machine made it 2 x.
    c.coord.state.renewed_at[c.leases["n1"].id] = time.monotonic() - AFTER * 1.2

    assert (await c.watch("n3").check(cluster_spec(), AFTER)).removed == ()
    c.silence("n1")
    assert (await c.watch("n3").check(cluster_spec(), AFTER)).removed == ("n1",)


async def test_members_that_renew_are_not_suspected() -> None:
    c = await make_cluster()

    assert (await c.watch("n1").check(cluster_spec(), AFTER)).removed == ()

    assert c.runner.calls == []


async def test_a_member_that_rejoined_under_a_new_lease_is_not_removed() -> None:
    c = await make_cluster()
    watch = c.watch("n1")
    await watch.check(cluster_spec(), AFTER)  # caches the members and their leases
    c.silence("n2")
    fresh = await c.coord.grant(1.0)
    await c.coord.put(c.keys.member("n2"), b"{}", fresh)

    assert (await watch.check(cluster_spec(), AFTER)).removed == ()

    assert c.runner.calls == []


async def test_a_node_whose_own_membership_lapsed_judges_no_one() -> None:
    c = await make_cluster()
    c.silence("n1")
    await c.coord.delete(c.keys.member("n2"))

    assert (await c.watch("n2").check(cluster_spec(), AFTER)).removed == ()

    assert c.runner.calls == []


async def test_the_next_look_is_timed_for_when_the_oldest_silence_would_cross() -> None:
    c = await make_cluster()
    c.coord.state.renewed_at[c.leases["n3"].id] -= 0.2

    look = await c.watch("n1").check(cluster_spec(), AFTER)

    assert look.quiet_for is not None
    assert 0.0 < look.quiet_for <= AFTER - 0.2


async def test_the_next_look_is_not_timed_while_a_silent_member_is_left_alone() -> None:
    c = await make_cluster(controller="n1")
    c.silence("n2")  # the controller's to fence, not n3's

    look = await c.watch("n3").check(cluster_spec(), AFTER)

    assert look.removed == ()
    assert look.quiet_for is None


async def test_a_silence_no_longer_than_this_nodes_own_lateness_is_not_suspected() -> None:
    # A stalled leader (or a suspecter starved of CPU) left every renewal unapplied alike.
    c = await make_cluster()
    c.coord.state.renewed_at[c.leases["n1"].id] -= 0.3
    c.coord.state.renewed_at[c.leases["n2"].id] -= 0.35

    look = await c.watch("n1").check(cluster_spec(), AFTER)

    assert look.removed == ()
    assert c.runner.calls == []


async def test_a_silence_longer_than_this_nodes_own_lateness_is_still_suspected() -> None:
    c = await make_cluster()
    c.coord.state.renewed_at[c.leases["n1"].id] -= 0.3
    c.silence("n2")

    assert (await c.watch("n1").check(cluster_spec(), AFTER)).removed == ("n2",)


async def test_the_next_look_is_not_timed_while_this_nodes_own_renewal_is_late() -> None:
    c = await make_cluster()
    c.coord.state.renewed_at[c.leases["n1"].id] -= 0.3

    assert (await c.watch("n1").check(cluster_spec(), AFTER)).quiet_for is None


def test_quiet_for_counts_from_the_oldest_silence() -> None:
    assert quiet_for(["n2", "n3"], {"n2": 0.05, "n3": 0.2}, 0.3) == pytest.approx(0.1)
    assert quiet_for([], {}, 0.3) == 0.3


def test_quiet_for_is_unknown_when_a_member_has_no_age() -> None:
    # No Raft leader: nothing renews, and the fallen leader's age comes back with the next.
    assert quiet_for(["n2", "n3"], {"n2": 0.05}, 0.3) is None
