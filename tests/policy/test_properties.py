"""Properties of the scheduler over generated clusters and snapshots (hypothesis).

Safety: never two copies of an exclusive resource or two primaries once the transition has
run; nothing started or promoted on an offline, lost, standby, maintenance, banned or
being-fenced node. Liveness: applying the transition and scheduling again gives no action
(convergence). Shape: every dependency points forward, and the output is deterministic.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hakeeper.config import parse, to_spec
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.scores import INF
from hakeeper.model.state import ClusterState, state_from_dict
from hakeeper.model.transition import Action, Transition
from hakeeper.policy.scheduler import schedule
from hakeeper.policy.simulate import apply

SCORES = st.sampled_from([-INF, -10, 0, 10, 50, 100, INF])
ROLES = ["started", "started", "failed", "unknown", "stopped"]


@st.composite
def clusters(draw: st.DrawFn, assigned: bool = False) -> tuple[ClusterSpec, ClusterState]:
    """A generated cluster and snapshot; ``assigned``: with the controller's assignments
    too, stale ones included (on nodes where nothing runs, on nodes that are down)."""
    n = draw(st.integers(2, 4))
    nodes = [f"n{i}" for i in range(1, n + 1)]
    watchdog = draw(st.booleans())
    cfg: dict[str, Any] = {
        "cluster": {
            "fencing": draw(st.booleans()),
            "no_quorum_policy": draw(st.sampled_from(["stop", "freeze", "ignore"])),
            "failback": draw(st.sampled_from(["auto", "manual"])),
        },
        "nodes": {name: {"watchdog": watchdog and draw(st.booleans())} for name in nodes},
        "resources": {},
        "groups": {},
        "clones": {},
        "constraints": {"location": [], "colocation": [], "order": []},
    }
    res = cfg["resources"]
    count = draw(st.integers(1, 4))
    for i in range(count):
        res[f"r{i}"] = {
            "agent": "process",
            "migration_threshold": draw(st.sampled_from([0, 1, 2])),
            "failure_timeout": draw(st.sampled_from([0, 30])),
            "on_fail": draw(
                st.sampled_from(
                    ["restart", "restart", "stop", "fence", "standby", "ignore", "block"]
                )
            ),
            "exclusive": draw(st.sampled_from([True, True, True, False])),
            "target_role": draw(st.sampled_from(["started"] * 5 + ["stopped"])),
        }
    tops = [f"r{i}" for i in range(count)]
    if count >= 2 and draw(st.booleans()):
        cfg["groups"]["g"] = {"members": ["r0", "r1"], "target_role": res["r0"].pop("target_role")}
        del res["r1"]["target_role"]
        tops = ["g", *tops[2:]]
    if draw(st.booleans()):
        res["c"] = {"agent": "process", "on_fail": draw(st.sampled_from(["restart", "stop"]))}
        cfg["clones"]["cc"] = {
            "resource": "c",
            "max": draw(st.integers(1, n)),
            "max_per_node": draw(st.integers(1, 2)),
        }
        tops.append("cc")
    promotable = draw(st.booleans())
    if promotable:
        res["p"] = {"agent": "process", "on_fail": draw(st.sampled_from(["restart", "demote"]))}
        cfg["clones"]["db"] = {"resource": "p", "promotable": True}
        tops.append("db")
    for _ in range(draw(st.integers(0, 4))):
        cfg["constraints"]["location"].append(
            {
                "resource": draw(st.sampled_from(tops)),
                "node": draw(st.sampled_from(nodes)),
                "score": draw(SCORES),
            }
        )
    for i, j in draw(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), max_size=3)):
        if i < len(tops) and j < len(tops) and i > j:
            entry: dict[str, Any] = {"resource": tops[i], "with": tops[j], "score": draw(SCORES)}
            if tops[j] == "db" and draw(st.booleans()):
                entry["with_role"] = "primary"
            cfg["constraints"]["colocation"].append(entry)
    for i, j in draw(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), max_size=2)):
        if i < len(tops) and j < len(tops) and i < j:
            cfg["constraints"]["order"].append({"first": tops[i], "then": tops[j]})
    spec = to_spec(parse(cfg, source="generated"))

    now = 1000.0
    state: dict[str, Any] = {
        "now": now,
        "quorum": draw(st.sampled_from([True, True, True, False])),
        "nodes": {},
        "instances": [],
        "failcounts": [],
        "promotion_scores": {},
        "constraints": [],
    }
    for name in nodes:
        status = draw(st.sampled_from(["online"] * 4 + ["offline", "lost"]))
        state["nodes"][name] = {
            "status": status,
            "fenced": status == "lost" and draw(st.booleans()),
            "standby": draw(st.integers(0, 5)) == 0,
            "maintenance": draw(st.integers(0, 7)) == 0,
        }
    prims = list(res)
    for _ in range(draw(st.integers(0, 6))):
        prim = draw(st.sampled_from(prims))
        roles = [*ROLES, "promoted"] if prim == "p" else ROLES
        instance = {
            "resource": prim,
            "node": draw(st.sampled_from(nodes)),
            "role": draw(st.sampled_from(roles)),
        }
        if prim == "p" and instance["role"] == "failed" and draw(st.booleans()):
            instance["demotable"] = True  # failed as the primary
        state["instances"].append(instance)
    for _ in range(draw(st.integers(0, 3))):
        state["failcounts"].append(
            {
                "resource": draw(st.sampled_from(prims)),
                "node": draw(st.sampled_from(nodes)),
                "count": draw(st.integers(1, 3)),
                "last_failure": now - draw(st.sampled_from([1, 100])),
            }
        )
    if promotable:
        state["promotion_scores"]["p"] = {
            name: draw(st.integers(-1, 5)) for name in nodes if draw(st.booleans())
        }
    for _ in range(draw(st.integers(0, 2))):
        state["constraints"].append(
            {
                "kind": draw(st.sampled_from(["ban", "move"])),
                "resource": draw(st.sampled_from(tops)),
                "node": draw(st.sampled_from(nodes)),
            }
        )
    if assigned:
        state["assignments"] = [
            {
                "resource": prim,
                "placements": [
                    {"node": node, "role": "promoted" if prim == "p" and not i else "started"}
                    for i, node in enumerate(draw(st.lists(st.sampled_from(nodes), unique=True)))
                ],
            }
            for prim in prims
            if draw(st.booleans())
        ]
    return spec, state_from_dict(state)


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _may_run(spec: ClusterSpec, state: ClusterState, node: str) -> bool:
    """Could an instance there still be running (not down, not reset by its watchdog)?"""
    ns = state.node(node)
    watchdog = spec.watchdog or any(n.watchdog for n in spec.nodes if n.name == node)
    return ns.status == "online" or (ns.unclean and not watchdog)


def _singleton_starts(spec: ClusterSpec, tr: Transition) -> list[Action]:
    """The starts of exclusive primitives outside any clone."""
    exclusive = {p.id for p in spec.primitives if p.meta.exclusive}
    cloned = {c.child for c in spec.clones} | {
        m for g in spec.groups for c in spec.clones if c.child == g.id for m in g.members
    }
    return [a for a in tr if a.kind == "start" and a.resource in exclusive - cloned]


def _after_probes(spec: ClusterSpec, state: ClusterState) -> tuple[ClusterState, Transition]:
    """The snapshot and transition once what the probes found is acted on: probes come
    first, and what they find is acted on in the next cycle."""
    tr = schedule(spec, state)
    for _ in range(3):
        if not any(d.kind == "probe" for d in tr.decisions):
            break
        state = apply(state, tr)
        tr = schedule(spec, state)
    return state, tr


@SETTINGS
@given(clusters())
def test_a_started_exclusive_resource_runs_exactly_once_afterwards(
    case: tuple[ClusterSpec, ClusterState],
) -> None:
    spec, state = case
    tr = schedule(spec, state)
    after = apply(state, tr)
    for action in _singleton_starts(spec, tr):
        copies = [
            i
            for i in after.instances
            if i.resource == action.resource
            and i.role != "stopped"
            and _may_run(spec, after, i.node)
        ]
        assert len(copies) == 1, (action.key, copies, tr.lines())


@SETTINGS
@given(clusters())
def test_a_promotion_leaves_exactly_one_primary(case: tuple[ClusterSpec, ClusterState]) -> None:
    spec, state = case
    tr = schedule(spec, state)
    if not any(a.kind == "promote" for a in tr):
        return
    after = apply(state, tr)
    primaries = [
        i for i in after.instances if i.role == "promoted" and _may_run(spec, after, i.node)
    ]
    assert len(primaries) == 1, (primaries, tr.lines())


@SETTINGS
@given(clusters())
def test_nothing_starts_on_a_node_that_cannot_host(case: tuple[ClusterSpec, ClusterState]) -> None:
    spec, state = case
    tr = schedule(spec, state)
    fenced = {a.node for a in tr if a.kind == "fence"}
    for action in tr:
        if action.kind not in ("start", "promote"):
            continue
        node = action.node
        ns = state.node(node)
        cfg = spec.node(node)
        assert cfg is not None
        assert ns.status == "online", action.key
        assert not ns.standby, action.key
        assert not cfg.standby, action.key
        assert not ns.maintenance, action.key
        assert not cfg.maintenance, action.key
        assert node not in fenced, action.key
        assert action.resource is not None
        unit = spec.top_level(action.resource)
        banned = any(
            rc.kind == "ban" and rc.node == node and spec.top_level(rc.resource) == unit
            for rc in state.constraints
        ) or any(
            loc.resource == unit and loc.node == node and loc.score <= -INF and loc.role == "any"
            for loc in spec.locations
        )
        assert not banned, action.key


@SETTINGS
@given(clusters())
def test_scheduling_again_after_the_transition_does_nothing(
    case: tuple[ClusterSpec, ClusterState],
) -> None:
    spec, state = case
    state, tr = _after_probes(spec, state)
    again = schedule(spec, apply(state, tr))
    assert again.lines() == [], (tr.lines(), again.lines(), [str(d) for d in again.decisions])


@SETTINGS
@given(clusters())
def test_every_dependency_comes_before_its_action(case: tuple[ClusterSpec, ClusterState]) -> None:
    spec, state = case
    tr = schedule(spec, state)
    assert len(set(tr.lines())) == len(tr.actions)
    for before, after in tr.edges:
        assert before < after


@settings(max_examples=100, deadline=None)
@given(clusters())
def test_same_input_same_output(case: tuple[ClusterSpec, ClusterState]) -> None:
    spec, state = case
    assert schedule(spec, state) == schedule(spec, state)


@SETTINGS
@given(clusters(assigned=True))
def test_with_stale_assignments_the_next_transition_only_prunes_what_the_fences_left(
    case: tuple[ClusterSpec, ClusterState],
) -> None:
    spec, state = case
    state, tr = _after_probes(spec, state)
    after = apply(state, tr)
    again = schedule(spec, after)
    # A node this transition fences is down only afterwards: the next one prunes it.
    fenced = {a.node for a in tr if a.kind == "fence"}
    assert all(a.kind == "prune" and a.node in fenced for a in again), again.lines()
    assert schedule(spec, apply(after, again)).lines() == []


@SETTINGS
@given(clusters(assigned=True))
def test_a_started_singleton_is_assigned_to_one_online_node_afterwards(
    case: tuple[ClusterSpec, ClusterState],
) -> None:
    spec, state = case
    tr = schedule(spec, state)
    after = apply(state, tr)
    for action in _singleton_starts(spec, tr):
        assignment = after.assignment(action.resource)
        assert assignment is not None
        online = [p.node for p in assignment.placements if after.node(p.node).status == "online"]
        assert online == [action.node], (action.key, assignment, tr.lines())
        for retract in (a for a in tr if a.kind == "retract" and a.resource == action.resource):
            assert tr.comes_before(retract.key, action.key), tr.edge_lines()
