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
