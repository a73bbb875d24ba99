"""Fence on suspicion: recover a crashed node's resources before its lease runs out.

Lease expiry needs nothing but the engine: a member is lost one TTL after its last renewal.
Corosync and keepalived detect a dead peer sooner, by missed heartbeats. hakeeper can do the
same because it fences: a member whose renewals stopped ``suspect_after`` ago is powered off by
its fence device, and once the device confirms it, nothing runs there any more (STONITH's
premise), so its member key may go at once instead of one TTL later.

What keeps this safe:

* Only power fencing counts. Every device that may fence the node must be of kind ``power``
  (its "off" stops the agent too). A fabric device leaves a live agent whose own lease
  deadline is still ahead and which could act until it passes: such a node waits for its
  lease, as without suspicion.
* A silence is counted beyond this node's own: the time by which its own renewal is late
  (`OWN_RENEWAL_GRACE`) is taken off every other member's silence. A stalled Raft leader
  commits nobody's renewal, and a suspecter whose own process stalled (starved of CPU, its
  event loop held) sees everyone silent when it wakes: neither says anything about one member.
* A suspicion is confirmed after a linearizable read. This member has then applied every
  renewal committed before the read, so a slow apply cannot fake a silence, and a member cut
  off from the majority cannot read at all and suspects no one.
* The member key goes in one txn with the fenced mark, guarded by the suspect's lease being
  the one suspected and by the controller's term: the scheduler sees the node lost and fenced
  in the same revision, and a stale suspicion (the node rejoined, another controller took
  over) changes nothing.

Who acts: the controller, for any other member; for the controller's own node (a crashed
controller cannot suspect itself) the first live member by name, the others only if the
silence lasts twice as long. That txn also deletes the controller key, and the usual
campaign elects the next controller.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from hakeeper.coord.raft_peers import member_address
from hakeeper.errors import CoordError
from hakeeper.fencing.topology import Fencer
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.events import NodeFenced
from hakeeper.model.records import FencedMark
from hakeeper.model.timing import TimingProfile
from hakeeper.runtime.events_log import EventLog
from hakeeper.runtime.fence_plan import devices_used, power_fences
from hakeeper.runtime.membership import renew_every
from hakeeper.runtime.store import ClusterStore

log = logging.getLogger(__name__)

#: How often the renewal ages are looked at, as a fraction of ``suspect_after``, while some
#: member's age is unknown (no Raft leader) or past the threshold with nothing done about it.
#: Otherwise the next look is timed for the moment the oldest silence would cross it (plus
#: `DEADLINE_MARGIN`): ages only grow with time, or start again at a renewal, so nobody can
#: cross sooner, and the detection adds no half tick (~9 ms at 0.3 s). A look reads local
#: state (and the members once every `REFRESH_INTERVAL`).
TICK_FRACTION = 1 / 16
DEADLINE_MARGIN = 0.001
#: Renewal intervals this node's own renewal may take (a commit included) before the excess
#: is taken as a stall of its own or of the leader and subtracted from others' silences.
OWN_RENEWAL_GRACE = 1.5
#: How long a view of the members may serve before it is read again.
REFRESH_INTERVAL = 1.0
#: Pause before fencing the same node again after a failed attempt.
RETRY_INTERVAL = 2.0
REVOKE_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class Look:
    """What one look did: the nodes fenced and removed, and for how long (seconds) no other
    member can cross the threshold (None: not known, look again at the tick)."""

    removed: tuple[str, ...]
    quiet_for: float | None


def quiet_for(members: Iterable[str], ages: Mapping[str, float], after: float) -> float | None:
    """How long none of ``members`` can have been silent longer than ``after``, from their
    current ``ages``; None when one has no known age or is past the threshold already."""
    known = [ages.get(node) for node in members]
    if any(age is None or age >= after for age in known):
        return None
    return after - max((age for age in known if age is not None), default=0.0)


@dataclass(frozen=True, slots=True)
class MembersView:
    """Members and their leases, and the controller (node, term), read in one revision."""

    leases: dict[str, int]
    controller: tuple[str, int] | None
    read_at: float


class SuspicionWatch:
    """Runs on every node next to the membership; acts only as the module docstring says."""

    def __init__(
        self,
        *,
        node: str,
        store: ClusterStore,
        spec: Callable[[], ClusterSpec],
        events: EventLog,
        fencer: Callable[[ClusterSpec], Fencer | None],
        timing: TimingProfile,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._node = node
        self._store = store
        self._spec = spec
        self._events = events
        self._fencer = fencer
        self._timing = timing
        self._wall = wall
        self._clock = clock
        self._view: MembersView | None = None
        self._failed_at: dict[str, float] = {}
        self._unfenceable: set[str] = set()

    async def run(self) -> None:
        wait = self._timing.renew_interval
        while True:
            await asyncio.sleep(wait)
            spec = self._spec()
            after = spec.suspect_after
            if after is None or not spec.options.fencing:
                wait = self._timing.renew_interval
                continue
            wait = after * TICK_FRACTION
            try:
                look = await self.check(spec, after)
            except (CoordError, TimeoutError) as exc:
                log.info("event=suspicion_check_failed error=%r", str(exc) or type(exc).__name__)
                continue
            if look.quiet_for is not None:
                wait = min(look.quiet_for + DEADLINE_MARGIN, after)

    async def check(self, spec: ClusterSpec, after: float) -> Look:
        """One look at the renewal ages: fence and remove whoever is confirmed silent."""
        view = self._view
        if view is None or self._clock() - view.read_at > REFRESH_INTERVAL:
            view = await self._read()
        ages, late = await self._ages(spec, view, after)
        silent = [n for n, age in ages.items() if age > after]
        if not silent:
            return Look((), self._quiet_for(view, ages, after, late))
        view = await self._read()  # the linearizable read that confirms (module docstring)
        ages, late = await self._ages(spec, view, after)
        confirmed = [n for n in silent if ages.get(n, 0.0) > after]
        removed = []
        for node in confirmed:
            if not self._may_act(view, node, confirmed, ages[node] > 2 * after):
                continue
            if await self._fence(spec, view, node, ages[node]):
                removed.append(node)
        if removed:
            self._view = None
            return Look(tuple(removed), None)
        return Look((), self._quiet_for(view, ages, after, late))

    def _quiet_for(
        self, view: MembersView, ages: Mapping[str, float], after: float, late: float
    ) -> float | None:
        if late:
            return None  # the others' silences jump when this node's own renewal lands
        return quiet_for(self._others(view), ages, after)

    def _others(self, view: MembersView) -> list[str]:
        return [node for node in view.leases if node != self._node]

    async def _read(self) -> MembersView:
        async with asyncio.timeout(self._timing.renew_interval * 5):
            read = await self._store.member_leases()
        controller = read.controller
        view = MembersView(
            dict(read.leases),
            (controller.node, controller.term) if controller else None,
            self._clock(),
        )
        self._view = view
        return view

    async def _ages(
        self, spec: ClusterSpec, view: MembersView, after: float
    ) -> tuple[dict[str, float], float]:
        """Each other member's silence (seconds since its last renewal), where known, less
        the time this node's own renewal is late (module docstring); and that lateness."""
        ages = {}
        for node, lease in view.leases.items():
            found = spec.node(node)
            member = None if found is None else member_address(found)
            age = await self._store.lease_renewed_ago(lease, member)
            if age is not None:
                ages[node] = age
        own = ages.pop(self._node, None)
        grace = OWN_RENEWAL_GRACE * renew_every(spec)
        late = 0.0 if own is None else max(0.0, own - grace)
        if not late:
            return ages, late
        discounted = {node: max(0.0, age - late) for node, age in ages.items()}
        spared = sorted(n for n, age in ages.items() if age > after >= discounted[n])
        if spared:
            log.info("event=suspicion_discounted nodes=%s own_late=%.3f", ",".join(spared), late)
        return discounted, late

    def _may_act(self, view: MembersView, node: str, silent: list[str], long_silent: bool) -> bool:
        if view.controller is None or self._node not in view.leases:
            # No controller: the next one sees the lease run out, or suspects. Not a member
            # (this node's own lease lapsed): it rejoins before it judges anyone.
            return False
        controller = view.controller[0]
        if controller != self._node and node != controller:
            return False
        if controller != self._node:
            # One fence of a silent controller is enough: the first live member (by name)
            # acts; the others step in only if it stays silent twice as long.
            live = sorted(n for n in view.leases if n not in silent)
            if live[:1] != [self._node] and not long_silent:
                return False
        return self._clock() - self._failed_at.get(node, float("-inf")) >= RETRY_INTERVAL

    async def _fence(self, spec: ClusterSpec, view: MembersView, node: str, silent: float) -> bool:
        if not power_fences(spec, node):
            if node not in self._unfenceable:
                self._unfenceable.add(node)
                log.warning(
                    "event=suspect_waits_for_lease node=%s reason=not_every_device_is_power", node
                )
            return False
        fencer = self._fencer(spec)
        if fencer is None:
            return False
        lease = view.leases[node]
        assert view.controller is not None
        controller, term = view.controller
        log.warning(
            "event=node_suspected node=%s by=%s lease=%d silent=%.3f",
            node,
            self._node,
            lease,
            silent,
        )
        started = self._clock()
        outcome = await fencer.fence(node, "off")
        device = devices_used(outcome)
        fenced = NodeFenced(
            ts=self._wall(), node=node, device=device, duration=self._clock() - started,
            ok=outcome.fenced,
        )  # fmt: skip
        if not outcome.fenced:
            await self._emit(fenced)
            self._failed_at[node] = self._clock()
            log.warning("event=suspect_fence_failed node=%s reason=%r", node, outcome.reason)
            return False
        self._failed_at.pop(node, None)
        mark = FencedMark(by=device, ts=self._wall(), suspected=True)
        # The event is written beside the removal, not before it: one commit less before the
        # recovery. (The log orders events by their time, not by when they landed.)
        emitting = asyncio.create_task(self._emit(fenced))
        try:
            removed = await self._store.fence_out_suspect(
                node, lease, term, mark, was_controller=node == controller
            )
        finally:
            await emitting
        log.info("event=suspect_removed node=%s ok=%s", node, removed)
        if removed:
            # The lease's other keys (a controller key, leased statuses) go with it; a node
            # that was in fact alive learns from its next renewal that it must self-fence.
            try:
                async with asyncio.timeout(REVOKE_TIMEOUT):
                    await self._store.revoke(lease)
            except (CoordError, TimeoutError) as exc:
                log.info("event=suspect_revoke_failed node=%s error=%r", node, str(exc))
        return removed

    async def _emit(self, event: NodeFenced) -> None:
        try:
            await self._events.append(event)
        except CoordError as exc:
            log.warning("event=event_log_write_failed kind=%s error=%r", event.kind, str(exc))
