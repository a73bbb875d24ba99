"""The node's watchdog: a hung agent gets its machine reset before its lease can expire.

Linux's watchdog API (``/dev/watchdog``, hardware or the ``softdog`` module): opening the
device arms it; every write or ``WDIOC_KEEPALIVE`` restarts its countdown; writing ``V`` before
closing disarms it (the "magic close"); ``WDIOC_SETTIMEOUT`` sets the countdown in whole
seconds. Patroni's three modes: ``off``; ``automatic`` uses a watchdog when the device opens;
``required`` refuses to run resources without one.

The rule that makes it a fence (shared/DESIGN.md section 4, rule 2b): the agent feeds the
watchdog at instant ``now`` only if the machine would still be reset before its member lease
can expire on the engine, ``now + timeout <= sent + ttl`` (``sent`` read before the last
confirmed renewal), or if nothing exclusive runs here any more. So once renewals stop, or the
agent hangs, or a stop after quorum loss fails, the feeding stops and the reset comes no later
than the lease's expiry: by the time the controller sees the lease gone, the node is off or
holds nothing exclusive.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import struct
from collections.abc import Callable
from typing import Protocol

from hakeeper.errors import ConfigError
from hakeeper.model.cluster import WatchdogMode, WatchdogSpec
from hakeeper.model.timing import TimingProfile

log = logging.getLogger(__name__)

# <linux/watchdog.h>: _IOR('W', 5, int), _IOWR('W', 6, int), _IOR('W', 7, int)
WDIOC_KEEPALIVE = 0x80045705
WDIOC_SETTIMEOUT = 0xC0045706
WDIOC_GETTIMEOUT = 0x80045707


class WatchdogUnavailable(ConfigError):
    """``watchdog = "required"`` and the device cannot be armed."""


class WatchdogDevice(Protocol):
    def set_timeout(self, seconds: int) -> int: ...

    def keepalive(self) -> None: ...

    def close(self, *, disarm: bool) -> None: ...


class LinuxWatchdog:
    """``/dev/watchdog`` through its ioctls; opening it arms it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)

    def set_timeout(self, seconds: int) -> int:
        """Ask for ``seconds``; returns what the driver granted."""
        granted = fcntl.ioctl(self._fd, WDIOC_SETTIMEOUT, struct.pack("i", seconds))
        return int(struct.unpack("i", granted)[0])

    def keepalive(self) -> None:
        fcntl.ioctl(self._fd, WDIOC_KEEPALIVE, struct.pack("i", 0))

    def close(self, *, disarm: bool) -> None:
        if disarm:
            os.write(self._fd, b"V")
        os.close(self._fd)


def watchdog_timeout(spec: WatchdogSpec, timing: TimingProfile) -> int:
    """The countdown to use, checked against the lease timing; ConfigError that explains.

    Default: the whole seconds of ``ttl - margin``. It must be at least 1 s (watchdogs count
    whole seconds), at most ``ttl - margin`` (fed right after a renewal, the reset must still
    come before the lease can expire), and above two renew intervals (or a normal gap between
    feeds would reset a healthy node)."""
    budget = timing.member_ttl - timing.self_fence_margin
    seconds = spec.timeout if spec.timeout is not None else math.floor(budget)
    where = f"watchdog with profile {timing.name!r} (member TTL {timing.member_ttl:g}s"
    where += f", self-fence margin {timing.self_fence_margin:g}s"
    where += f", renew every {timing.renew_interval:g}s)"
    if seconds < 1:
        raise ConfigError(
            f"{where}: Linux watchdogs count whole seconds, and a 1 s countdown cannot fit "
            f"before the lease expires (TTL - margin = {budget:g}s); use the default or wan "
            'profile with a watchdog, or set watchdog = "off"'
        )
    if seconds > budget:
        raise ConfigError(
            f"{where}: watchdog_timeout {seconds}s exceeds TTL - margin = {budget:g}s, so a hung "
            "node could still run after its lease expired and its resources moved; lower "
            "watchdog_timeout or raise the TTL"
        )
    if seconds <= 2 * timing.renew_interval:
        raise ConfigError(
            f"{where}: watchdog_timeout {seconds}s is not above two renew intervals "
            f"({2 * timing.renew_interval:g}s): a healthy node would be reset between feeds"
        )
    return seconds


Opener = Callable[[str], WatchdogDevice]


class Watchdog:
    """Arms, feeds and disarms one watchdog according to the mode; every failure is logged
    with what to fix, and only ``required`` turns an unusable device into an error."""

    def __init__(
        self,
        spec: WatchdogSpec,
        timing: TimingProfile,
        *,
        mode: WatchdogMode | None = None,
        opener: Opener = LinuxWatchdog,
    ) -> None:
        self.spec = spec
        self.mode: WatchdogMode = mode or spec.mode
        self._timing = timing
        self._opener = opener
        self._device: WatchdogDevice | None = None
        self.timeout = 0

    @property
    def armed(self) -> bool:
        return self._device is not None

    def arm(self) -> bool:
        """Open and set the countdown. False when off or (automatic) unavailable."""
        if self.mode == "off":
            return False
        try:
            self.timeout = watchdog_timeout(self.spec, self._timing)
            device = self._opener(self.spec.device)
        except (ConfigError, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            message = f"watchdog {self.spec.device} unusable: {reason}"
            if self.mode == "required":
                raise WatchdogUnavailable(
                    f"{message}; load softdog or a hardware driver, fix the timing, or set "
                    'watchdog = "automatic" or "off" (then a lost node needs a fence device)'
                ) from exc
            log.warning("event=watchdog_unavailable mode=automatic reason=%r", message)
            return False
        try:
            granted = device.set_timeout(self.timeout)
        except OSError as exc:
            device.close(disarm=True)
            message = f"watchdog {self.spec.device} refused a {self.timeout}s countdown"
            if self.mode == "required":
                raise WatchdogUnavailable(f"{message}: {exc.strerror}") from exc
            log.warning("event=watchdog_unavailable mode=automatic reason=%r", message)
            return False
        if granted != self.timeout:
            device.close(disarm=True)
            message = f"{self.spec.device} granted {granted}s, not the {self.timeout}s asked for"
            if self.mode == "required":
                raise WatchdogUnavailable(f"watchdog {message}: set watchdog_timeout = {granted}")
            log.warning("event=watchdog_unavailable mode=automatic reason=%r", message)
            return False
        self._device = device
        log.info("event=watchdog_armed device=%s timeout=%d", self.spec.device, self.timeout)
        return True

    def feed(self, *, lease_safe_until: float, now: float, holds_exclusive: bool) -> bool:
        """Feed if the rule allows it; True when fed."""
        if self._device is None:
            return False
        if holds_exclusive and now + self.timeout > lease_safe_until:
            return False
        try:
            self._device.keepalive()
        except OSError as exc:
            log.error("event=watchdog_feed_failed error=%r", exc.strerror)
            return False
        return True

    def disarm(self) -> None:
        """Magic close (graceful shutdown, after every resource stopped)."""
        device, self._device = self._device, None
        if device is not None:
            with contextlib.suppress(OSError):
                device.close(disarm=True)
            log.info("event=watchdog_disarmed device=%s", self.spec.device)
