"""The watchdog: timing rules that are explained, modes, and feeding only while safe."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from hakeeper.errors import ConfigError
from hakeeper.fencing.watchdog import (
    LinuxWatchdog,
    Watchdog,
    WatchdogUnavailable,
    watchdog_timeout,
)
from hakeeper.model.cluster import WatchdogSpec
from hakeeper.model.timing import profile

DEFAULT = profile("default")


class FakeDevice:
    def __init__(self, grant: int | None = None) -> None:
        self.grant = grant
        self.feeds = 0
        self.closed: bool | None = None  # the disarm flag it was closed with
        self.timeout = 0

    def set_timeout(self, seconds: int) -> int:
        self.timeout = seconds
        return self.grant if self.grant is not None else seconds

    def keepalive(self) -> None:
        self.feeds += 1

    def close(self, *, disarm: bool) -> None:
        self.closed = disarm


def armed(device: FakeDevice, mode: str = "required") -> Watchdog:
    dog = Watchdog(WatchdogSpec(mode), DEFAULT, opener=lambda path: device)  # type: ignore[arg-type]
    assert dog.arm()
    return dog


def test_the_default_timeout_is_the_whole_seconds_of_ttl_minus_margin() -> None:
    assert watchdog_timeout(WatchdogSpec("required"), DEFAULT) == 2


def test_the_fast_profile_cannot_have_a_watchdog_and_the_error_says_why() -> None:
    with pytest.raises(ConfigError, match="whole seconds"):
        watchdog_timeout(WatchdogSpec("required"), profile("fast"))


def test_a_timeout_longer_than_the_lease_allows_is_refused() -> None:
    with pytest.raises(ConfigError, match="exceeds TTL - margin"):
        watchdog_timeout(WatchdogSpec("required", timeout=3), DEFAULT)


def test_a_timeout_within_two_renew_intervals_is_refused() -> None:
    timing = replace(DEFAULT, member_ttl=10.0, renew_interval=3.0, self_fence_margin=1.0)
    with pytest.raises(ConfigError, match="two renew intervals"):
        watchdog_timeout(WatchdogSpec("required", timeout=5), timing)


def test_off_never_opens_the_device() -> None:
    def opener(path: str) -> FakeDevice:
        raise AssertionError("opened")

    assert not Watchdog(WatchdogSpec("off"), DEFAULT, opener=opener).arm()  # type: ignore[arg-type]


def test_required_refuses_to_run_without_a_device(tmp_path: Path) -> None:
    spec = WatchdogSpec("required", device=str(tmp_path / "no-watchdog"))
    with pytest.raises(WatchdogUnavailable, match="softdog"):
        Watchdog(spec, DEFAULT).arm()


def test_automatic_goes_on_without_a_device(tmp_path: Path) -> None:
    spec = WatchdogSpec("automatic", device=str(tmp_path / "no-watchdog"))
    dog = Watchdog(spec, DEFAULT)
    assert not dog.arm()
    assert not dog.feed(lease_safe_until=100.0, now=0.0, holds_exclusive=True)


def test_a_driver_granting_another_timeout_is_refused_when_required() -> None:
    device = FakeDevice(grant=60)
    dog = Watchdog(WatchdogSpec("required"), DEFAULT, opener=lambda path: device)  # type: ignore[arg-type]
    with pytest.raises(WatchdogUnavailable, match="granted 60s"):
        dog.arm()
    assert device.closed is True


def test_it_is_fed_while_the_reset_would_still_come_before_the_lease_expires() -> None:
    device = FakeDevice()
    dog = armed(device)

    assert dog.feed(lease_safe_until=10.0, now=8.0, holds_exclusive=True)
    assert not dog.feed(lease_safe_until=10.0, now=8.5, holds_exclusive=True)
    assert device.feeds == 1


def test_a_node_holding_nothing_exclusive_keeps_feeding_without_a_lease() -> None:
    device = FakeDevice()
    dog = armed(device)

    assert dog.feed(lease_safe_until=float("-inf"), now=50.0, holds_exclusive=False)


def test_disarm_does_the_magic_close() -> None:
    device = FakeDevice()
    armed(device).disarm()
    assert device.closed is True


def test_the_linux_device_disarms_with_a_magic_v(tmp_path: Path) -> None:
    # A FIFO stands in for /dev/watchdog's write side: what a driver would read.
    fifo = tmp_path / "watchdog"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        LinuxWatchdog(str(fifo)).close(disarm=True)
        assert os.read(reader, 10) == b"V"
    finally:
        os.close(reader)
