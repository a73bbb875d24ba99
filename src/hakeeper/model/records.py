"""The records of cluster state that cross the boundary between the runtime and its readers.

What the controller wants (`Assignment` of `Placement`s), what a node's executor last saw
(`InstanceStatus`), the run-time flags of a node (`NodeFlags`), the mark that a node is
certainly off (`FencedMark`) and what a live node publishes about itself (`MemberRecord`).
Plain data: the cluster store (`hakeeper.runtime.store`, with `hakeeper.runtime.record_codec`
for the bytes) is the only place that turns them into keys and bytes and back.
"""

from __future__ import annotations

from dataclasses import dataclass

from hakeeper.model.roles import InstanceRole, PlacedRole
from hakeeper.model.wire_version import Format, FormatSupport, VersionRange


@dataclass(frozen=True, slots=True)
class Placement:
    """One instance the controller wants running: where, in which role."""

    node: str
    role: PlacedRole = "started"
    instance: int = 0


@dataclass(frozen=True, slots=True)
class Assignment:
    resource: str
    placements: tuple[Placement, ...]
    epoch: int = 0  # the assignment key's mod_revision; 0 before it is written

    def on(self, node: str) -> tuple[Placement, ...]:
        return tuple(p for p in self.placements if p.node == node)


@dataclass(frozen=True, slots=True)
class InstanceStatus:
    """What a node's executor last saw of one local instance."""

    resource: str
    node: str
    instance: int
    role: InstanceRole
    epoch: int  # of the assignment the executor acted on
    ts: float  # wall clock of the report
    op: str = ""
    rc: int = 0
    reason: str = ""
    #: Failed in the primary role and maybe still running as a replica: its promote failed,
    #: or a monitor of the primary failed without finding it stopped. ``on_fail = "demote"``
    #: recovers such a failure by a demote instead of a stop and start.
    demotable: bool = False


@dataclass(frozen=True, slots=True)
class NodeFlags:
    standby: bool = False
    maintenance: bool = False


@dataclass(frozen=True, slots=True)
class FencedMark:
    """``node`` is certainly off: what it ran runs no more (rule 2 of shared/DESIGN.md §4)."""

    by: str  # the fence device(s) that confirmed it, or "operator"
    ts: float  # wall clock of the confirmation
    suspected: bool = False  # fenced on suspicion, before its lease ran out


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """What a live node publishes under its (leased) member key."""

    node: str
    address: str
    release: str = ""  # the hakeeper release it runs; "" from releases before versions
    formats: tuple[FormatSupport, ...] = ()  # what it speaks and reads (`upgrade plan`)

    def versions_of(self, fmt: Format) -> VersionRange | None:
        """The versions of ``fmt`` it published; None from a release before versions."""
        return next((f.versions for f in self.formats if f.format == fmt), None)


#: After a failed run, a periodic job tries again this soon (or at its period, if shorter).
JOB_RETRY = 300.0
#: A new schedule runs first this long after it is seen (or after its period, if shorter):
#: a cluster just started for a restore is not backed up, empty, before it is restored.
FIRST_RUN_DELAY = 600.0


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A periodic controller job (a scheduled backup, a drill): its period and last outcomes,
    kept in the key space so that one run per period holds for the whole cluster, across
    controller changes. Times are wall clock; ``since`` is when the schedule was first seen."""

    name: str
    period: float
    since: float
    last_ok: float | None = None
    last_failure: float | None = None
    reason: str = ""  # of the last failure
    overdue_since: float | None = None

    def next_run(self) -> float:
        if self.last_failure is not None and (
            self.last_ok is None or self.last_failure > self.last_ok
        ):
            return self.last_failure + min(self.period, JOB_RETRY)
        if self.last_ok is None:
            return self.since + min(self.period, FIRST_RUN_DELAY)
        return self.last_ok + self.period

    def overdue(self, now: float) -> bool:
        """No success within two periods (of the last success, or of the schedule's start)."""
        return now - (self.last_ok if self.last_ok is not None else self.since) > 2 * self.period

    def failing(self) -> bool:
        return self.last_failure is not None and (
            self.last_ok is None or self.last_failure > self.last_ok
        )
