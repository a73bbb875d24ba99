"""The role vocabulary: every word the cluster uses for what an instance is or should be.

`Role` is the whole vocabulary. A place that means fewer words names one of the subsets below,
each spelled with the same words (tests/model/test_roles.py checks that every subset stays
inside `Role`), so a role read in one place means the same in every other:

=================  =====================================================================
subset             where
=================  =====================================================================
`InstanceRole`     what a snapshot or a node's status says of one instance
`PlacedRole`       what an assignment can place on a node
`LocalRole`        what a node's executor holds locally (a failed stop may still run)
`ReportedRole`     what a node's executor reports under an epoch
`TargetRole`       what the cluster file or ``resource stop|start`` asks of a resource
`RoleSelector`     which instances of a promotable clone a follower (a balancer backend)
                   takes: only the primary, or only the replicas
=================  =====================================================================

Two vocabularies are formats of their own and are translated at their edge only: the event
log says ``primary``/``replica`` for the instances of a promotable clone (`EventRole`,
`event_role`), and a constraint of the cluster file filters on ``any``/``primary``
(`RoleFilter`).
"""

from __future__ import annotations

from typing import Literal

Role = Literal["started", "promoted", "unpromoted", "stopped", "failed", "unknown"]

InstanceRole = Literal["started", "promoted", "stopped", "failed", "unknown"]
PlacedRole = Literal["started", "promoted"]
LocalRole = Literal["started", "promoted", "failed"]
ReportedRole = Literal["started", "promoted", "stopped", "failed"]
TargetRole = Literal["started", "stopped", "unpromoted"]

INSTANCE_ROLES: tuple[InstanceRole, ...] = ("started", "promoted", "stopped", "failed", "unknown")
PLACED_ROLES: tuple[PlacedRole, ...] = ("started", "promoted")
TARGET_ROLES: tuple[TargetRole, ...] = ("started", "stopped", "unpromoted")
#: The roles in which an instance serves.
RUNNING_ROLES: frozenset[InstanceRole] = frozenset({"started", "promoted"})

RoleSelector = Literal["promoted", "unpromoted"]
ROLE_SELECTORS: tuple[RoleSelector, ...] = ("promoted", "unpromoted")

EventRole = Literal["started", "primary", "replica"]
EVENT_ROLES: tuple[EventRole, ...] = ("started", "primary", "replica")

RoleFilter = Literal["any", "primary"]


def event_role(role: InstanceRole, *, promotable: bool) -> EventRole:
    """The event log's word for an instance in ``role``: a promotable clone's instances are
    the primary or a replica, every other instance is ``started``."""
    if not promotable:
        return "started"
    return "primary" if role == "promoted" else "replica"


def selected_roles(selector: RoleSelector | None) -> frozenset[InstanceRole]:
    """The instance roles a follower with ``selector`` takes: every running instance without
    one; an unpromoted instance (a replica) is one that runs and reports ``started``."""
    if selector is None:
        return RUNNING_ROLES
    return frozenset({"promoted"}) if selector == "promoted" else frozenset({"started"})
