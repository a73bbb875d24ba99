"""The runtime's observation seam: histograms, bounded counters, and the loops that report."""

from __future__ import annotations

import asyncio

from hakeeper.errors import NoQuorum
from hakeeper.model.records import MemberRecord
from hakeeper.model.timing import PROFILES
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.membership import Membership
from hakeeper.runtime.observations import MAX_SERIES, OTHER, Histogram, Observations
from tests.fakes import LocalCoordinator, VirtualClock

KEYS = KeySpace("c1")


def test_a_value_on_a_bound_falls_in_that_bucket_and_the_rest_accumulate() -> None:
    h = Histogram((1.0, 2.0))
    for value in (0.5, 1.0, 1.5, 9.0):
        h.observe(value)

    assert h.cumulative() == [(1.0, 2), (2.0, 3), (float("inf"), 4)]
    assert (h.count, h.total) == (4, 12.0)


def test_fences_are_counted_by_target_and_result() -> None:
    o = Observations()
    o.fence_finished("n2", True, 3.0)
    o.fence_finished("n2", False, 30.0)
    o.fence_finished("n2", True, 2.0)

    assert o.fences == {("n2", "success"): 2, ("n2", "failure"): 1}
    assert o.fence_duration.count == 3


def test_label_values_past_the_bound_are_folded_not_kept() -> None:
    o = Observations()
    for i in range(MAX_SERIES + 50):
        o.failover_finished(f"r{i}", 1.0)

    assert len(o.failovers) == MAX_SERIES + 1
    assert o.failovers[OTHER] == 50
    assert o.failover_duration.count == MAX_SERIES + 50


async def test_membership_reports_each_renewal_and_each_failure() -> None:
    coord = LocalCoordinator()
    clock = VirtualClock()
    o = Observations()
    membership = Membership(
        coord, KEYS, MemberRecord("n1", "127.0.0.11"), PROFILES["fast"], clock, o
    )
    await membership.join()

    assert await membership.renew()
    coord.fail_with = NoQuorum("minority")
    assert not await membership.renew()

    assert (o.lease_renewal.count, o.lease_renewal_failures) == (1, 1)


async def test_a_renewal_that_finds_the_lease_gone_is_a_failure() -> None:
    coord = LocalCoordinator()
    o = Observations()
    membership = Membership(
        coord, KEYS, MemberRecord("n1", "127.0.0.11"), PROFILES["fast"], VirtualClock(), o
    )
    lease = await membership.join()
    await coord.revoke(lease)

    assert not await asyncio.wait_for(membership.renew(), 10)
    assert (o.lease_renewal.count, o.lease_renewal_failures) == (0, 1)
