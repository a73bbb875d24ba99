"""One scheduling cycle's view of the cluster: config and snapshot merged and classified.

Pure: built from a `ClusterSpec` and a `ClusterState`, no I/O, no clock. Everything the
placement and graph modules need to ask ("can n2 host anything?", "which instances of web
count?", "is n3 being fenced in this transition?") is answered here, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from hakeeper.model.cluster import Clone, ClusterSpec, NodeSpec, Primitive
from hakeeper.model.roles import InstanceRole, TargetRole
from hakeeper.model.scores import INF
from hakeeper.model.state import ClusterState, FailCount, NodeState
from hakeeper.model.transition import Decision

UnitKind = Literal["primitive", "group", "clone"]

#: Instance roles that mean "may be running".
ACTIVE: frozenset[InstanceRole] = frozenset({"started", "promoted", "failed", "unknown"})


@dataclass(frozen=True, slots=True)
class Unit:
    """What placement moves as one: a primitive, a group, or a clone (of either)."""

    id: str
    kind: UnitKind
    members: tuple[Primitive, ...]
    clone: Clone | None
    stickiness: int
    priority: int
    target_role: TargetRole

    @property
    def exclusive(self) -> bool:
        """Must never run twice: true for a primitive or group with an exclusive member."""
        return self.clone is None and any(m.meta.exclusive for m in self.members)

    @property
    def promotable(self) -> bool:
        return self.clone is not None and self.clone.promotable

    @property
    def member_ids(self) -> tuple[str, ...]:
        return tuple(m.id for m in self.members)


@dataclass
class View:
    spec: ClusterSpec
    state: ClusterState
    nodes: tuple[str, ...]
    node: dict[str, NodeState]
    units: dict[str, Unit]
    unit_of: dict[str, str]
    #: (resource, node) → roles of the instances there, on nodes where they count.
    instances: dict[tuple[str, str], list[InstanceRole]] = field(default_factory=dict)
    #: (resource, node) where an instance failed in a stop (it may still run there).
    stop_failed: set[tuple[str, str]] = field(default_factory=set)
    #: (resource, node) where a promotable clone's instance failed as the primary and its
    #: on_fail is demote: it counts as a running replica, and the graph demotes it.
    demoting: set[tuple[str, str]] = field(default_factory=set)
    #: (resource, node) → fail count that has not expired.
    failcounts: dict[tuple[str, str], FailCount] = field(default_factory=dict)
    standby: set[str] = field(default_factory=set)
    maintenance: set[str] = field(default_factory=set)
    #: Nodes this transition fences (lost and unfenced, or on_fail = fence).
    fence: dict[str, str] = field(default_factory=dict)
    #: Lost nodes whose watchdog guarantees they are off by now.
    self_fenced: set[str] = field(default_factory=set)
    #: Lost nodes that can be neither fenced nor trusted to have self-fenced.
    unsafe: set[str] = field(default_factory=set)
    #: Nodes that had any instance before the transition, per unit (for fence ordering).
    was_on: dict[str, set[str]] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)
    quorum_policy_applies: bool = False

    # --- questions -------------------------------------------------------------------

    def index(self, node: str) -> int:
        return self.nodes.index(node)

    def gone(self, node: str) -> bool:
        """Nothing runs there once the fences of this transition are done."""
        return self.node[node].down or node in self.fence or node in self.self_fenced

    def can_host(self, node: str) -> str | None:
        """None if ``node`` may receive new instances, else why not."""
        ns = self.node[node]
        if ns.status == "lost":
            return f"{node} is lost" + (" and fenced" if ns.fenced else "")
        if ns.status == "offline":
            return f"{node} is offline"
        if node in self.fence:
            return f"{node} is being fenced"
        if node in self.maintenance:
            return f"{node} is in maintenance"
        if node in self.standby:
            return f"{node} is in standby"
        return None

    def gone_primary_maintenance(self, unit: Unit) -> str | None:
        """A node in maintenance where the primary runs: it stays primary, untouched. Not a
        node gone by the end of this transition (fenced in it): no primary is left there."""
        rid = unit.members[0].id
        for node in self.nodes:
            if (
                node in self.maintenance
                and not self.gone(node)
                and "promoted" in self.roles(rid, node)
            ):
                return node
        return None

    def live(self, unit: Unit) -> dict[str, int]:
        """Node → instances of ``unit`` that count now (not on gone or unsafe nodes)."""
        out: dict[str, int] = {}
        for node in self.nodes:
            if self.gone(node) or node in self.unsafe:
                continue
            count = max(len(self.roles(m, node)) for m in unit.member_ids)
            if count:
                out[node] = count
        return out

    def roles(self, resource: str, node: str) -> list[InstanceRole]:
        return self.instances.get((resource, node), [])

    def failcount(self, resource: str, node: str) -> int:
        fc = self.failcounts.get((resource, node))
        return fc.count if fc else 0

    def score_of_location(self, unit: Unit, node: str, role: str = "any") -> list[tuple[int, str]]:
        """Location scores for ``unit`` on ``node``: config constraints, then CLI move/ban."""
        attrs = self.node[node].attributes
        parts: list[tuple[int, str]] = []
        for loc in self.spec.locations:
            if loc.resource == unit.id and loc.role == role and loc.matches(node, attrs):
                where = f"node {node}" if loc.node else f"{loc.attribute}={loc.value}"
                parts.append((loc.score, f"location {where}"))
        if role == "any" or unit.promotable:
            for rc in self.state.constraints:
                if self.spec.top_level(rc.resource) == unit.id and rc.node == node:
                    if rc.kind == "ban":
                        parts.append((-INF, f"banned from {node} (CLI)"))
                    elif role == ("primary" if unit.promotable else "any"):
                        parts.append((INF, f"moved to {node} (CLI)"))
        return parts


def _units(spec: ClusterSpec) -> tuple[dict[str, Unit], dict[str, str]]:
    default = spec.options.default_stickiness
    prims = {p.id: p for p in spec.primitives}
    groups = {g.id: g for g in spec.groups}
    units: dict[str, Unit] = {}
    unit_of: dict[str, str] = {}

    def stick(own: int | None, members: tuple[Primitive, ...]) -> int:
        if own is not None:
            return own
        values = [m.meta.stickiness for m in members if m.meta.stickiness is not None]
        return sum(values) if values else default

    for top in spec.top_level_ids():
        clone = next((c for c in spec.clones if c.id == top), None)
        child = clone.child if clone else top
        if child in groups:
            g = groups[child]
            members = tuple(prims[m] for m in g.members if m in prims)
            kind: UnitKind = "group"
            own, priority, role = g.stickiness, g.priority, g.target_role
        else:
            members = (prims[child],)
            kind = "primitive"
            meta = prims[child].meta
            own, priority, role = None, meta.priority, meta.target_role
        if clone:
            kind = "clone"
            own = clone.stickiness if clone.stickiness is not None else own
            priority, role = clone.priority, clone.target_role
        units[top] = Unit(top, kind, members, clone, stick(own, members), priority, role)
        for m in members:
            unit_of[m.id] = top
    return units, unit_of


def build_view(spec: ClusterSpec, state: ClusterState) -> View:
    nodes = tuple(n.name for n in spec.nodes)
    merged: dict[str, NodeState] = {}
    for ns in spec.nodes:
        seen = state.node(ns.name)
        merged[ns.name] = NodeState(
            ns.name,
            seen.status,
            seen.fenced,
            seen.standby or ns.standby,
            seen.maintenance or ns.maintenance,
            {**ns.attributes, **seen.attributes},
        )
    units, unit_of = _units(spec)
    view = View(spec, state, nodes, merged, units, unit_of)
    view.standby = {n for n, ns in merged.items() if ns.standby}
    view.maintenance = {n for n, ns in merged.items() if ns.maintenance}
    prims = {p.id: p for p in spec.primitives}

    for inst in state.instances:
        if inst.node not in merged or inst.role not in ACTIVE:
            continue
        if inst.resource not in unit_of:
            if not merged[inst.node].down:
                view.decisions.append(
                    Decision(
                        "unmanaged",
                        f"{inst.resource} runs on {inst.node} but is not in the config: left "
                        "alone (stop it by hand, or add it back)",
                        inst.resource,
                        inst.node,
                    )
                )
            continue
        if merged[inst.node].down:
            continue
        role = inst.role
        if inst.demotable and prims[inst.resource].meta.on_fail == "demote":
            # Pacemaker's on-fail=demote: not restarted; the graph demotes it in place.
            role = "started"
            view.demoting.add((inst.resource, inst.node))
        view.instances.setdefault((inst.resource, inst.node), []).append(role)
        if inst.stop_failed:
            view.stop_failed.add((inst.resource, inst.node))
        view.was_on.setdefault(unit_of[inst.resource], set()).add(inst.node)
    for roles in view.instances.values():
        order = {"promoted": 0, "started": 1, "unknown": 2, "failed": 3}
        roles.sort(key=lambda r: order.get(r, 9))

    for fc in sorted(state.failcounts, key=lambda f: (f.resource, f.node)):
        prim = prims.get(fc.resource)
        if prim is None or fc.count <= 0 or prim.meta.on_fail == "ignore":
            continue
        if fc.expired(prim.meta.failure_timeout, state.now):
            view.decisions.append(
                Decision(
                    "failcount-expired",
                    f"{fc.resource} failed {fc.count}x on {fc.node}, last "
                    f"{state.now - fc.last_failure:g}s ago: older than failure_timeout "
                    f"{prim.meta.failure_timeout:g}s, forgotten",
                    fc.resource,
                    fc.node,
                )
            )
            continue
        view.failcounts[(fc.resource, fc.node)] = fc
        if prim.meta.on_fail == "standby" and fc.node not in view.standby:
            view.standby.add(fc.node)
            view.decisions.append(
                Decision(
                    "move",
                    f"{fc.node} is treated as standby: {fc.resource} failed there and its "
                    "on_fail is standby",
                    fc.resource,
                    fc.node,
                )
            )
    _decide_fencing(view, prims)
    return view


def _decide_fencing(view: View, prims: Mapping[str, Primitive]) -> None:
    """Which nodes this transition fences, which self-fenced, which stay unsafe."""
    spec, state = view.spec, view.state
    acting = state.quorum or spec.options.no_quorum_policy == "ignore"
    for name in view.nodes:
        ns = view.node[name]
        if not ns.unclean:
            continue
        held = sorted({r for (r, n) in view.instances if n == name})
        ran = f"; it ran {', '.join(held)}" if held else ""
        watchdog = spec.watchdog or (spec.node(name) or _NO_NODE).watchdog
        if watchdog:
            view.self_fenced.add(name)
            view.decisions.append(
                Decision(
                    "self-fenced",
                    f"{name} was lost and its lease expired; its watchdog has reset it by now{ran}",
                    node=name,
                )
            )
        elif acting and spec.options.fencing:
            view.fence[name] = f"{name} was lost{ran}"
            view.decisions.append(Decision("fence", f"fencing {name}: it was lost{ran}", node=name))
        else:
            view.unsafe.add(name)
    if not acting:
        return
    for (resource, node), roles in sorted(view.instances.items()):
        prim = prims[resource]
        if "failed" not in roles or view.node[node].status != "online" or node in view.fence:
            continue
        if prim.meta.on_fail == "fence":
            why = f"{resource} failed on {node} and its on_fail is fence"
        elif (resource, node) in view.stop_failed and prim.meta.on_fail not in ("block", "ignore"):
            # Pacemaker's default for a failed stop: only fencing makes "not running" certain,
            # and retrying the stop would leave the resource blocked meanwhile.
            why = f"stop of {resource} failed on {node}: it may still run there"
        else:
            continue
        if spec.options.fencing:
            view.fence[node] = why
            view.decisions.append(Decision("fence", f"fencing {node}: {why}", resource, node))


_NO_NODE = NodeSpec("?")
