"""Pure what-ifs: apply a transition to a snapshot, or an event an operator asks about.

`apply` assumes every action succeeds (a probe of an unknown instance finds it stopped)
and rewrites the assignments as the controller would; it is what the convergence property
schedules again, and what ``hakeeper plan`` shows as "after". `what_if` turns an
operator's question ("node n1 down", "resource web fails on n2") into the snapshot in which
it happened.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import replace

from hakeeper.errors import ConfigError
from hakeeper.model.cluster import ClusterSpec, NodeSpec
from hakeeper.model.durations import parse_duration
from hakeeper.model.records import Assignment
from hakeeper.model.roles import InstanceRole
from hakeeper.model.state import (
    ClusterState,
    FailCount,
    Instance,
    NodeState,
    RuntimeConstraint,
    RuntimeKind,
)
from hakeeper.model.transition import Transition
from hakeeper.policy.assignments import assignment_after

_ORDER = {"promoted": 0, "started": 1, "unknown": 2, "failed": 3, "stopped": 4}


def apply(state: ClusterState, transition: Transition) -> ClusterState:
    fenced = {a.node for a in transition if a.kind == "fence"}
    nodes = []
    for ns in state.nodes:
        if ns.name in fenced:
            ns = replace(ns, status="lost", fenced=True)
        nodes.append(ns)
    roles: dict[tuple[str, str], list[InstanceRole | None]] = defaultdict(list)
    for inst in state.instances:
        if inst.role != "stopped" and inst.node not in fenced:
            roles[(inst.resource, inst.node)].append(inst.role)
    for key in roles:
        roles[key].sort(key=lambda r: _ORDER[r or "stopped"])
    for a in transition:
        if a.resource is None:
            continue
        here = roles[(a.resource, a.node)]
        if a.kind == "demote" and a.instance < len(here):
            here[a.instance] = "started"
        elif a.instance < len(here) and (
            a.kind in ("stop", "retract") or (a.kind == "monitor" and here[a.instance] == "unknown")
        ):
            here[a.instance] = None
    final: dict[tuple[str, str], list[InstanceRole]] = {
        k: [r for r in v if r is not None] for k, v in roles.items()
    }
    for a in transition:
        if a.kind == "start" and a.resource is not None:
            final.setdefault((a.resource, a.node), []).append("started")
    for a in transition:
        if a.kind == "promote" and a.resource is not None:
            now = final.setdefault((a.resource, a.node), [])
            if "started" in now:
                now[now.index("started")] = "promoted"
    instances = tuple(
        Instance(res, node, role)
        for (res, node), rs in sorted(final.items())
        for role in sorted(rs, key=lambda r: _ORDER[r])
    )
    return replace(
        state,
        nodes=tuple(nodes),
        instances=instances,
        assignments=_assignments_after(state, transition),
    )


def _assignments_after(state: ClusterState, transition: Transition) -> tuple[Assignment, ...]:
    """What the controller has written once every action of ``transition`` is done."""
    out = {a.resource: a for a in state.assignments}
    for action in transition:
        if action.resource is not None and action.kind not in ("fence", "monitor"):
            out[action.resource] = assignment_after(out.get(action.resource), action)
    return tuple(out[name] for name in sorted(out))


_QUESTIONS = (
    "node N down|lost          the node vanishes (crash or cut off; it must be fenced)",
    "node N offline            the node leaves cleanly (everything on it stopped)",
    "node N fenced             the node is confirmed off",
    "node N up                 the node is back online",
    "node N standby|maintenance|active",
    "node N added              a new node joined and probed (hakeeper node add)",
    "node N removed            the node is drained before it leaves (hakeeper node remove)",
    "resource R fails on N     an instance of R fails on N (fail count + 1)",
    "resource R moves to N     a CLI move (location inf)",
    "resource R banned from N  a CLI ban (location -inf)",
    "quorum lost|regained",
    "wait DURATION             time passes (fail counts may expire), e.g. wait 10m",
)


def questions() -> str:
    return "\n".join(_QUESTIONS)


def spec_if(spec: ClusterSpec, question: str) -> ClusterSpec:
    """The cluster file after ``question``: "node N added" gains node N (with the defaults
    of a node table) unless it has it; every other question leaves the file as it is."""
    m = re.fullmatch(r"node (\S+) added", " ".join(question.split()), flags=re.IGNORECASE)
    if m is None or spec.node(m.group(1)) is not None:
        return spec
    return replace(spec, nodes=(*spec.nodes, NodeSpec(m.group(1))))


def what_if(state: ClusterState, question: str, nodes: tuple[str, ...] = ()) -> ClusterState:
    """The snapshot after ``question`` happened; ConfigError lists the forms understood.

    Membership questions: "node N added" is the new node online with nothing running (it
    has probed); "node N removed" is the node in standby, which is what the removal does
    before the node leaves: everything it runs moves away, nothing else moves."""
    words = question.split()
    text = " ".join(words).lower()
    m = re.fullmatch(r"node (\S+) (added|removed)", text)
    if m and m.group(2) == "added":
        if any(ns.name == words[1] for ns in state.nodes):  # in the file, not yet joined
            return state.with_node(replace(state.node(words[1]), status="online"))
        return replace(state, nodes=(*state.nodes, NodeState(words[1])))
    if m:
        question = f"node {words[1]} standby"
        words = question.split()
        text = question.lower()

    def node_named(name: str) -> NodeState:
        if nodes and name not in nodes:
            raise ConfigError(
                f"--what-if {question!r}: no node {name!r} (nodes: {', '.join(nodes)})"
            )
        return state.node(name)

    m = re.fullmatch(
        r"node (\S+) (down|lost|offline|fenced|up|online|standby|maintenance|active)", text
    )
    if m:
        ns = node_named(words[1])
        what = m.group(2)
        if what in ("down", "lost"):
            ns = replace(ns, status="lost", fenced=False)
        elif what == "offline":
            ns = replace(ns, status="offline", fenced=False)
            kept = tuple(i for i in state.instances if i.node != ns.name)
            state = replace(state, instances=kept)
        elif what == "fenced":
            ns = replace(ns, status="lost", fenced=True)
        elif what in ("up", "online"):
            ns = replace(ns, status="online", fenced=False)
        elif what == "standby":
            ns = replace(ns, standby=True)
        elif what == "maintenance":
            ns = replace(ns, maintenance=True)
        else:
            ns = replace(ns, standby=False, maintenance=False)
        return state.with_node(ns)
    m = re.fullmatch(r"resource (\S+) fails on (\S+)", text)
    if m:
        res, node = words[1], words[4]
        node_named(node)
        instances = list(state.instances)
        hit = next(
            (
                i
                for i, x in enumerate(instances)
                if x.resource == res and x.node == node and x.role in ("started", "promoted")
            ),
            None,
        )
        if hit is None:
            instances.append(Instance(res, node, "failed"))
        else:
            instances[hit] = replace(instances[hit], role="failed")
        counts = [f for f in state.failcounts if not (f.resource == res and f.node == node)]
        old = next((f.count for f in state.failcounts if f.resource == res and f.node == node), 0)
        counts.append(FailCount(res, node, old + 1, state.now))
        return replace(state, instances=tuple(instances), failcounts=tuple(counts))
    m = re.fullmatch(r"resource (\S+) (moves to|banned from) (\S+)", text)
    if m:
        node_named(words[-1])
        kind: RuntimeKind = "move" if m.group(2) == "moves to" else "ban"
        rc = RuntimeConstraint(kind, words[1], words[-1])
        return replace(state, constraints=(*state.constraints, rc))
    m = re.fullmatch(r"quorum (lost|regained)", text)
    if m:
        return replace(state, quorum=m.group(1) == "regained")
    m = re.fullmatch(r"wait (\S+)", text)
    if m:
        seconds = parse_duration(m.group(1), what=f"--what-if {question!r}")
        return replace(state, now=state.now + seconds)
    raise ConfigError(f"--what-if {question!r}: not understood; use one of:\n{questions()}")
