"""The scheduling watch (`hakeeper.runtime.scheduling_watch`) on a virtual clock."""

from __future__ import annotations

import logging

import pytest

from hakeeper.config.loader import spec_from_text
from hakeeper.model.cluster import ClusterSpec
from hakeeper.runtime.scheduling_watch import SchedulingWatch

SUSPECTING = spec_from_text(
    '[cluster]\nprofile = "fast"\nfencing = true\n[nodes.n1]\n[fencing]\nsuspect_after = 0.3\n'
    '[fencing.devices.pdu]\nagent = "fence_pdu"\nhost_list = ["n1"]\n',
    "test",
)
PLAIN = spec_from_text('[cluster]\nprofile = "fast"\n[nodes.n1]\n', "test")


class Stalls:
    """A clock that a sleep moves on by what was asked and ``stall`` more."""

    def __init__(self, stall: float) -> None:
        self.now = 0.0
        self.stall = stall

    async def sleep(self, seconds: float) -> None:
        self.now += seconds + self.stall


def watch(spec: ClusterSpec, stall: float) -> SchedulingWatch:
    clock = Stalls(stall)
    return SchedulingWatch("n1", lambda: spec, clock=lambda: clock.now, sleep=clock.sleep)


async def test_a_stall_of_a_renewal_interval_is_logged_against_suspect_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "hakeeper.runtime.scheduling_watch")

    late = await watch(SUSPECTING, 0.3).look()

    assert late == pytest.approx(0.3)
    assert "event=not_scheduled node=n1 late_ms=300 tolerated_ms=300 by=suspect_after" in (
        caplog.text
    )


async def test_without_suspicion_a_stall_is_logged_against_the_member_ttl(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "hakeeper.runtime.scheduling_watch")

    await watch(PLAIN, 0.5).look()

    assert "late_ms=500 tolerated_ms=1000 by=member_ttl" in caplog.text


async def test_a_wake_up_less_late_than_a_renewal_interval_is_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "hakeeper.runtime.scheduling_watch")

    await watch(SUSPECTING, 0.05).look()

    assert "not_scheduled" not in caplog.text
