"""A node's membership: its lease on the coordination engine and its self-fence deadline.

Safety rule 1 (shared/DESIGN.md section 4) starts here. The engine keeps a lease at least its
TTL after it *applied* the last renewal, which is after the node *sent* it. So the node takes
its clock reading before each renewal is sent; once a renewal is confirmed, the lease is
certainly alive until ``sent + ttl`` on the node's own monotonic clock, and the node must have
stopped every exclusive resource by then. ``deadline`` is that instant minus the safety
margin: past it the node no longer holds its membership and must act as if fenced.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from hakeeper.coord.base import Coordinator, Lease
from hakeeper.errors import CoordError
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.records import MemberRecord
from hakeeper.model.timing import TimingProfile
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.observations import Observations, Observer
from hakeeper.runtime.record_codec import encode_member

log = logging.getLogger(__name__)

Clock = Callable[[], float]

#: With fencing on suspicion, renewals per ``suspect_after``: others see a member silent for
#: one renewal period plus a commit, so one slow or late renewal must not look like death.
RENEWALS_PER_SUSPICION = 3


def renew_every(spec: ClusterSpec) -> float:
    """Seconds from one renewal's start to the next: the profile's renew interval, or a
    third of ``suspect_after`` when fencing on suspicion is on and that is shorter."""
    interval = spec.timing.renew_interval
    if spec.suspect_after is None or not spec.options.fencing:
        return interval
    return min(interval, spec.suspect_after / RENEWALS_PER_SUSPICION)


class Membership:
    """Holds one node's member lease and knows, on the local clock, until when it is safe."""

    def __init__(
        self,
        coord: Coordinator,
        keys: KeySpace,
        record: MemberRecord,
        timing: TimingProfile,
        clock: Clock,
        observer: Observer | None = None,
        every: Callable[[], float] | None = None,
    ) -> None:
        self._coord = coord
        self._observer: Observer = observer if observer is not None else Observations()
        self._keys = keys
        self._record = record
        self._timing = timing
        self._every = every if every is not None else lambda: timing.renew_interval
        self._clock = clock
        self._lease: Lease | None = None
        self._deadline = float("-inf")
        self._joined_revision = 0
        self.lost = asyncio.Event()

    @property
    def lease(self) -> Lease | None:
        return self._lease

    @property
    def joined_revision(self) -> int:
        """The store revision at which this node last joined (0 before it has): an
        assignment older than that was written while this node was not a member."""
        return self._joined_revision

    @property
    def deadline(self) -> float:
        """Local monotonic instant after which this node must hold nothing exclusive."""
        return self._deadline

    @property
    def lease_safe_until(self) -> float:
        """Local instant before which the engine certainly still holds the lease
        (``sent + ttl`` of the last confirmed renewal): the watchdog's bound."""
        return self._deadline + self._timing.self_fence_margin

    def remaining(self) -> float:
        """Seconds until the deadline on the local clock (negative once it has passed)."""
        return self._deadline - self._clock()

    def valid(self) -> bool:
        return self._lease is not None and self._clock() < self._deadline

    async def join(self) -> Lease:
        """Take a fresh lease and publish the member key under it."""
        sent = self._clock()
        lease = await self._coord.grant(self._timing.member_ttl)
        key = self._keys.member(self._record.node)
        self._joined_revision = await self._coord.put(key, encode_member(self._record), lease)
        self._lease = lease
        self._confirmed(sent, lease.ttl)
        self.lost.clear()
        log.info(
            "event=member_joined node=%s lease=%d ttl=%g", self._record.node, lease.id, lease.ttl
        )
        return lease

    async def renew(self) -> bool:
        """One renewal. True if the lease is alive and the deadline moved forward.

        False once the engine says the lease is gone; an engine error (no quorum,
        unreachable) leaves the deadline where it was, so it runs out on its own."""
        if self._lease is None:
            return False
        sent = self._clock()
        try:
            async with asyncio.timeout(self._timing.renew_interval * 2):
                alive = await self._coord.keepalive(self._lease)
        except (CoordError, TimeoutError) as exc:
            self._observer.lease_renewal_failed()
            log.warning(
                "event=renew_failed node=%s error=%r remaining=%.3f",
                self._record.node, str(exc) or type(exc).__name__, self._deadline - self._clock(),
            )  # fmt: skip
            return False
        if not alive:
            self._observer.lease_renewal_failed()
            self._lease = None
            self._deadline = float("-inf")
            self.lost.set()
            log.warning("event=member_lease_lost node=%s", self._record.node)
            return False
        self._observer.lease_renewed(self._clock() - sent)
        self._confirmed(sent, self._lease.ttl)
        # Debug only: benchmarks/api_load.py reads these to compare renewals under API load.
        log.debug(
            "event=member_lease_renewed node=%s at=%.3f took=%.4f",
            self._record.node, sent, self._clock() - sent,
        )  # fmt: skip
        return True

    async def run(self) -> None:
        """Renew every ``every()`` seconds (`renew_every`), start to start, until the engine
        says the lease is gone. Start to start: a renewal's own round trip must not stretch
        the silence the others see (with `fast` and ``suspect_after = 0.3`` a sleep of the
        whole interval after each renewal left a live member 0.1 s from being fenced).

        Rejoining is the caller's decision: a node whose lease expired may have been fenced
        and must re-probe what runs here before it joins again."""
        while self._lease is not None:
            started = self._clock()
            await self.renew()
            if self._lease is None:
                return
            await asyncio.sleep(max(0.0, self._every() - (self._clock() - started)))

    async def leave(self) -> None:
        """Give the lease back at once (graceful shutdown): others need not wait for a TTL."""
        lease, self._lease = self._lease, None
        self._deadline = float("-inf")
        if lease is not None:
            await self._coord.revoke(lease)

    def _confirmed(self, sent: float, ttl: float) -> None:
        self._deadline = max(self._deadline, sent + ttl - self._timing.self_fence_margin)
