"""A node's member lease and its self-fence deadline, on a virtual clock."""

from __future__ import annotations

import time

import pytest

from hakeeper.config.loader import spec_from_text
from hakeeper.coord.base import Lease
from hakeeper.errors import NoQuorum
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.records import MemberRecord
from hakeeper.model.timing import PROFILES
from hakeeper.runtime import membership as membership_module
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.membership import Membership, renew_every
from hakeeper.runtime.record_codec import decode_member
from tests.fakes import LocalCoordinator, VirtualClock

TIMING = PROFILES["default"]
KEYS = KeySpace("c1")


def member(coord: LocalCoordinator, clock: VirtualClock) -> Membership:
    return Membership(coord, KEYS, MemberRecord("n1", "127.0.0.11"), TIMING, clock)


async def test_joining_publishes_the_member_under_its_lease() -> None:
    coord = LocalCoordinator()
    membership = member(coord, VirtualClock())
    lease = await membership.join()
    kv = await coord.get(KEYS.member("n1"))
    assert kv is not None
    assert kv.lease == lease.id
    assert decode_member(kv.value) == MemberRecord("n1", "127.0.0.11")


async def test_the_deadline_counts_from_before_the_renewal_was_sent() -> None:
    clock = VirtualClock()
    membership = member(LocalCoordinator(), clock)
    await membership.join()
    clock.advance(1.0)
    sent = clock.now
    assert await membership.renew()
    assert membership.deadline == sent + TIMING.member_ttl - TIMING.self_fence_margin


async def test_without_quorum_the_deadline_runs_out_and_the_node_is_no_longer_valid() -> None:
    coord = LocalCoordinator()
    clock = VirtualClock()
    membership = member(coord, clock)
    await membership.join()
    deadline = membership.deadline
    coord.fail_with = NoQuorum("minority")
    clock.advance(1.0)
    assert not await membership.renew()
    assert membership.deadline == deadline
    assert membership.valid()
    clock.advance(deadline - clock.now)
    assert not membership.valid()


async def test_the_deadline_comes_before_the_engine_could_expire_the_lease() -> None:
    clock = VirtualClock()
    membership = member(LocalCoordinator(), clock)
    sent = clock.now
    await membership.join()
    assert membership.deadline < sent + TIMING.member_ttl


async def test_an_expired_lease_is_reported_lost() -> None:
    coord = LocalCoordinator()
    membership = member(coord, VirtualClock())
    await membership.join()
    coord.expire_leases(time.monotonic() + TIMING.member_ttl + 1)
    assert not await membership.renew()
    assert membership.lost.is_set()
    assert not membership.valid()
    assert await coord.get(KEYS.member("n1")) is None


async def test_leaving_revokes_the_lease_at_once() -> None:
    coord = LocalCoordinator()
    membership = member(coord, VirtualClock())
    await membership.join()
    await membership.leave()
    assert await coord.get(KEYS.member("n1")) is None
    assert not membership.valid()


class SlowRenewals(LocalCoordinator):
    """Each keepalive takes ``latency`` on the virtual clock; after ``rounds`` the lease is
    revoked, which ends `Membership.run`."""

    def __init__(self, clock: VirtualClock, latency: float, rounds: int) -> None:
        super().__init__()
        self.clock, self.latency, self.rounds = clock, latency, rounds

    async def keepalive(self, lease: Lease) -> bool:
        self.clock.advance(self.latency)
        self.rounds -= 1
        if self.rounds == 0:
            await self.revoke(lease)
        return await super().keepalive(lease)


async def test_renewals_are_paced_start_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = VirtualClock()
    coord = SlowRenewals(clock, latency=0.04, rounds=3)
    membership = Membership(
        coord, KEYS, MemberRecord("n1", "127.0.0.11"), TIMING, clock, every=lambda: 0.1
    )
    await membership.join()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    monkeypatch.setattr(membership_module.asyncio, "sleep", sleep)
    await membership.run()

    assert slept == pytest.approx([0.06, 0.06])  # 0.1 apart, the renewal's 0.04 included


def spec_with(fencing: str) -> ClusterSpec:
    return spec_from_text(
        f"""
[cluster]
profile = "fast"
{fencing}
[nodes.n1]
""",
        "test",
    )


def test_with_suspicion_a_member_renews_three_times_per_suspect_after() -> None:
    fencing = 'fencing = true\n[fencing]\nsuspect_after = "0.3s"\n'
    fencing += '[fencing.devices.pdu]\nagent = "fence_pdu"\nhost_list = ["n1"]'
    assert renew_every(spec_with(fencing)) == pytest.approx(0.1)


def test_without_suspicion_a_member_renews_every_renew_interval() -> None:
    assert renew_every(spec_with("")) == PROFILES["fast"].renew_interval
