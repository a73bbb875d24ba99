"""The scheduler's snapshot of the key space (`Observed`) and how raw keys become it.

Pure: `build_observed` turns one consistent read of the keys (`ClusterStore.observe` makes
it) into the typed state the scheduler reads; tests feed it keys directly. A node is
*online* while its member key exists; otherwise *lost* if any status of it still says
something runs there (and *fenced* once confirmed off), else *offline*.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from hakeeper.coord.base import KV
from hakeeper.errors import ConfigError
from hakeeper.model.attributes import NodeAttribute, promotion_scores, public_by_node, visible
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.records import Assignment, InstanceStatus, NodeFlags
from hakeeper.model.roles import RUNNING_ROLES, TargetRole
from hakeeper.model.state import (
    ClusterState,
    FailCount,
    Instance,
    NodeState,
    RuntimeConstraint,
)
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.record_codec import (
    DECODE_ERRORS,
    decode_assignment,
    decode_attribute,
    decode_constraint,
    decode_failcount,
    decode_flags,
    decode_status,
    decode_target_role,
)


@dataclass(frozen=True, slots=True)
class Observed:
    """One consistent read of the key space: the scheduler's snapshot and what produced it."""

    state: ClusterState
    assignments: Mapping[str, Assignment]
    statuses: tuple[InstanceStatus, ...]
    members: frozenset[str]
    target_roles: Mapping[str, TargetRole]
    revision: int
    #: The node attributes in force (`hakeeper.model.attributes.visible`), private ones too.
    attributes: tuple[NodeAttribute, ...] = ()
    #: Records whose value could not be read (torn or foreign), with why: left out (rule 5).
    refused: tuple[tuple[KV, str], ...] = ()

    def running_on(self, resource: str) -> list[str]:
        """The nodes not down whose status shows ``resource`` started or promoted, sorted."""
        return sorted(
            s.node
            for s in self.statuses
            if s.resource == resource
            and s.role in RUNNING_ROLES
            and not self.state.node(s.node).down
        )


def build_observed(
    keys: KeySpace, spec: ClusterSpec, kvs: Sequence[KV], now: float, revision: int
) -> Observed:
    """The scheduler's snapshot from the raw keys (pure: tests feed it keys directly)."""
    members: set[str] = set()
    assignments: dict[str, Assignment] = {}
    statuses: list[InstanceStatus] = []
    failcounts: list[FailCount] = []
    constraints: list[RuntimeConstraint] = []
    flags: dict[str, NodeFlags] = {}
    fenced: set[str] = set()
    roles: dict[str, TargetRole] = {}
    leaving: set[str] = set()
    refused: list[tuple[KV, str]] = []
    stored_attributes = attributes_from_kvs(keys, kvs)
    for kv in kvs:
        key = kv.key
        try:
            if key.startswith(keys.members):
                members.add(key[len(keys.members) :])
            elif key.startswith(keys.assignments):
                assignment = assignment_from_kv(keys, kv)
                assignments[assignment.resource] = assignment
            elif key.startswith(keys.status):
                statuses.append(status_from_kv(keys, kv))
            elif key.startswith(keys.failcounts):
                node, _, resource = key[len(keys.failcounts) :].partition("/")
                failcounts.append(decode_failcount(kv.value, resource, node))
            elif key.startswith(keys.constraints):
                resource, _, node = key[len(keys.constraints) :].partition("/")
                constraints.append(RuntimeConstraint(decode_constraint(kv.value), resource, node))
            elif key.startswith(keys.node_flags):
                flags[key[len(keys.node_flags) :]] = decode_flags(kv.value)
            elif key.startswith(keys.fenced_marks):
                fenced.add(key[len(keys.fenced_marks) :])
            elif key.startswith(keys.leaving_nodes):
                leaving.add(key[len(keys.leaving_nodes) :])
            elif key.startswith(keys.target_roles):
                roles[key[len(keys.target_roles) :]] = decode_target_role(kv.value)
        except DECODE_ERRORS as exc:
            # Rule 5: a torn or foreign record is refused where it is read, left out as if
            # never written: an assignment reads as unassigned (each executor keeps what it
            # runs), a status as not reported, a fail count as none, a constraint, a node's
            # flags or a role override as unset. Raised, it stopped every controller in turn.
            refused.append((kv, repr(exc)))

    # A fenced node's statuses are history until it has re-probed and cleared its mark.
    live_statuses = [s for s in statuses if s.node not in fenced]
    for node in leaving:
        flags[node] = NodeFlags(True, flags.get(node, NodeFlags()).maintenance)
    nodes = tuple(
        _node_state(n.name, members, fenced, live_statuses, flags.get(n.name, NodeFlags()))
        for n in spec.nodes
    )
    instances = tuple(
        Instance(
            s.resource,
            s.node,
            s.role,
            stop_failed=s.role == "failed" and s.op == "stop",
            demotable=s.role == "failed" and s.op != "stop" and s.demotable,
        )
        for s in sorted(live_statuses, key=lambda s: (s.resource, s.node, s.instance))
        if s.role != "stopped"
    )
    attributes = tuple(visible(stored_attributes, members))
    public = public_by_node(attributes)
    nodes = tuple(replace(n, attributes=public[n.name]) if n.name in public else n for n in nodes)
    state = ClusterState(
        now=now,
        quorum=True,
        nodes=nodes,
        promotion_scores=promotion_scores(attributes),
        instances=instances,
        failcounts=tuple(sorted(failcounts, key=lambda f: (f.resource, f.node))),
        constraints=tuple(sorted(constraints, key=lambda c: (c.resource, c.node))),
        assignments=tuple(assignments[r] for r in sorted(assignments)),
    )
    return Observed(
        state,
        assignments,
        tuple(statuses),
        frozenset(members),
        roles,
        revision,
        attributes,
        tuple(refused),
    )


def attributes_from_kvs(keys: KeySpace, kvs: Sequence[KV]) -> tuple[NodeAttribute, ...]:
    """The attributes among ``kvs`` (``attributes/<node>/<lifetime>/<name>``); a torn or
    foreign one is skipped: an agent's bad write must not stop the scheduler."""
    found: list[NodeAttribute] = []
    for kv in kvs:
        if not kv.key.startswith(keys.attributes):
            continue
        node, _, rest = kv.key[len(keys.attributes) :].partition("/")
        lifetime, _, name = rest.partition("/")
        try:
            found.append(decode_attribute(kv.value, node, lifetime, name))
        except (*DECODE_ERRORS, ConfigError):
            continue
    return tuple(found)


def _node_state(
    name: str,
    members: set[str],
    fenced: set[str],
    statuses: Sequence[InstanceStatus],
    flags: NodeFlags,
) -> NodeState:
    if name in members:
        return NodeState(name, "online", standby=flags.standby, maintenance=flags.maintenance)
    if name in fenced:
        return NodeState(name, "lost", fenced=True, standby=flags.standby)
    runs = any(s.node == name and s.role != "stopped" for s in statuses)
    return NodeState(name, "lost" if runs else "offline", standby=flags.standby)


def assignment_from_kv(keys: KeySpace, kv: KV) -> Assignment:
    """An assignment from its key (``assignments/<resource>``) and value, its epoch the key's
    ``mod_revision``; one of `DECODE_ERRORS` when the value is torn or foreign."""
    resource = kv.key[len(keys.assignments) :]
    return decode_assignment(kv.value, resource, kv.mod_revision)


def status_from_kv(keys: KeySpace, kv: KV) -> InstanceStatus:
    """A status from its key (``status/<node>/<resource>#<instance>``) and value."""
    node, _, name = kv.key[len(keys.status) :].partition("/")
    resource, _, instance = name.rpartition("#")
    return decode_status(kv.value, resource, node, int(instance))
