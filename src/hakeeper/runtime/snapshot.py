"""One read of the live cluster with every run-time override folded in: what the scheduler gets.

The controller, ``status`` (and ``plan --live``, ``resource``) and ``config apply`` all read
the cluster through `observe_cluster`, so they schedule from the same thing. The CLI's
overrides are folded in one place:

- node flags (``node standby|maintenance``), the leaving mark, moves and bans, fenced marks:
  into the snapshot's `ClusterState` (`hakeeper.runtime.observed.build_observed`), where the
  scheduler reads the observed facts of nodes and the constraints made at run time;
- target roles (``resource stop``): into the spec, as Pacemaker's ``target-role`` meta
  attribute is a property of the resource. The run-time role replaces the file's for that
  primitive, group or clone, and nothing downstream can tell the two apart except `status`,
  which reads `Observed.target_roles` to say "(cli)".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.roles import TargetRole
from hakeeper.model.transition import Transition
from hakeeper.policy.scheduler import schedule
from hakeeper.runtime.observed import Observed
from hakeeper.runtime.store import ClusterStore


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    """The config in force with the run-time target roles applied, and the observed state."""

    spec: ClusterSpec
    observed: Observed

    def transition(self) -> Transition:
        """What the controller does from this snapshot (the pure scheduler)."""
        return schedule(self.spec, self.observed.state)


async def observe_cluster(store: ClusterStore, spec: ClusterSpec, now: float) -> ClusterSnapshot:
    """Read the cluster once and fold every run-time override in (module docstring)."""
    observed = await store.observe(spec, now)
    return ClusterSnapshot(with_target_roles(spec, observed.target_roles), observed)


def with_target_roles(spec: ClusterSpec, target_roles: Mapping[str, TargetRole]) -> ClusterSpec:
    """``spec`` with each named primitive, group or clone's ``target_role`` replaced."""
    if not target_roles:
        return spec
    primitives = tuple(
        replace(p, meta=replace(p.meta, target_role=target_roles[p.id]))
        if p.id in target_roles
        else p
        for p in spec.primitives
    )
    groups = tuple(
        replace(g, target_role=target_roles[g.id]) if g.id in target_roles else g
        for g in spec.groups
    )
    clones = tuple(
        replace(c, target_role=target_roles[c.id]) if c.id in target_roles else c
        for c in spec.clones
    )
    return replace(spec, primitives=primitives, groups=groups, clones=clones)
