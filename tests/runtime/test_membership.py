"""A node's member lease and its self-fence deadline, on a virtual clock."""

from __future__ import annotations

import time

from hakeeper.errors import NoQuorum
from hakeeper.model.records import MemberRecord
from hakeeper.model.timing import PROFILES
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.membership import Membership
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
