"""The records of cluster state that cross the boundary between the runtime and its readers.

What the controller wants (`Assignment` of `Placement`s), what a node's executor last saw
(`InstanceStatus`) and the run-time flags of a node (`NodeFlags`). Plain data: the cluster store
(`hakeeper.runtime.store`) is the only place that turns them into keys and bytes and back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    # Only a type here: `hakeeper.model.state` holds assignments, so it imports this module.
    from hakeeper.model.state import Role

PlacedRole = Literal["started", "promoted"]


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
    role: Role
    epoch: int  # of the assignment the executor acted on
    ts: float  # wall clock of the report
    op: str = ""
    rc: int = 0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class NodeFlags:
    standby: bool = False
    maintenance: bool = False
