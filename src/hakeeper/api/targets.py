"""The names an operator gives an action, checked against the config in force.

Shared by every face (the CLI and the REST API): a name the cluster file does not define is
refused before anything is written.
"""

from __future__ import annotations

import time

from hakeeper.coord.base import Coordinator
from hakeeper.errors import ConfigError, HakeeperError, NoQuorum, Unreachable
from hakeeper.model.cluster import ClusterSpec
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.store import ClusterStore


def wall() -> float:
    return time.time()


def store_of(coord: Coordinator, spec: ClusterSpec) -> ClusterStore:
    """The cluster's records, read and written through ``coord``."""
    return ClusterStore(coord, KeySpace(spec.options.name))


# --- names the operator typed ----------------------------------------------------------------


def resource_ids(spec: ClusterSpec) -> list[str]:
    return (
        [p.id for p in spec.primitives] + [g.id for g in spec.groups] + [c.id for c in spec.clones]
    )


def require_resource(spec: ClusterSpec, rid: str) -> None:
    """Refuse a name the cluster file does not define, before anything is written."""
    known = resource_ids(spec)
    if rid not in known:
        raise ConfigError(
            f"unknown resource {rid!r}; the cluster file defines: {', '.join(known) or 'none'}"
        )


def require_node(spec: ClusterSpec, node: str) -> None:
    if spec.node(node) is None:
        known = ", ".join(n.name for n in spec.nodes)
        raise ConfigError(f"unknown node {node!r}; the cluster file defines: {known}")


def primitives_of(spec: ClusterSpec, rid: str) -> tuple[str, ...]:
    """The primitive ids ``rid`` stands for (statuses and fail counts are per primitive)."""
    for clone in spec.clones:
        if clone.id == rid:
            rid = clone.child
    for group in spec.groups:
        if group.id == rid:
            return group.members
    return (rid,)


def describe(exc: HakeeperError) -> str:
    """One line for stderr that says plainly whether the engine has no quorum or is gone."""
    text = str(exc)
    if isinstance(exc, NoQuorum) and "quorum" not in text.lower():
        return f"no quorum: {text}"
    if isinstance(exc, Unreachable) and "unreachable" not in text.lower():
        return f"unreachable: {text}"
    return text
