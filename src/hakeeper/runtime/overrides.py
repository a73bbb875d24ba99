"""Run-time overrides from the CLI applied to the cluster spec before scheduling.

``hakeeper resource stop R`` stores a target role for R instead of editing the cluster file
(Pacemaker's ``target-role`` meta attribute); the controller and ``status`` schedule with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from hakeeper.model.cluster import ClusterSpec, TargetRole


def apply_overrides(spec: ClusterSpec, target_roles: Mapping[str, TargetRole]) -> ClusterSpec:
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
