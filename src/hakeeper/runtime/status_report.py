"""The status read-model: one report of the live cluster, for every face that shows it.

Quorum, the controller, every node, and every resource: where it runs and in which role,
what the controller assigned (and under which epoch), fail counts, and *why* something does
not run. The pure scheduler is run on the same snapshot the controller reads
(`hakeeper.runtime.snapshot.observe_cluster`, the CLI's overrides folded in), so its decisions
(blocked, cannot-run, unmanaged…) and its pending actions ("start web on n2") are the
controller's own reasons. ``hakeeper status`` renders it (`hakeeper.cli.status`) and prints
`StatusReport.to_dict` for ``--json``; an API would serve the same document.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.durations import short_duration
from hakeeper.model.events import NodeFenced
from hakeeper.model.scores import format_score
from hakeeper.model.transition import Decision, Transition
from hakeeper.runtime.election import Controller
from hakeeper.runtime.observed import Observed
from hakeeper.runtime.snapshot import observe_cluster
from hakeeper.runtime.store import ClusterStore

#: Decisions that explain why something does not run where it should.
WHY = ("blocked", "cannot-run", "unmanaged", "frozen", "stop", "no-quorum", "self-fenced")
#: Decisions that make ``status`` exit 1.
PROBLEMS = ("blocked", "cannot-run")


@dataclass(frozen=True, slots=True)
class NodeRow:
    name: str
    state: str  # online | offline | lost | fenced
    standby: bool
    maintenance: bool
    controller: bool
    note: str = ""  # the scheduler about this node: fence pending, self-fenced
    attributes: Mapping[str, str] = field(default_factory=dict)  # in force, not private


@dataclass(frozen=True, slots=True)
class ResourceRow:
    id: str
    unit: str  # the top-level id the scheduler places (itself, its group or its clone)
    target: str  # the unit's effective target role
    override: bool  # target role set from the CLI (resource stop), not the file
    running: tuple[str, ...]  # "n1 started", "n2 promoted", "n3 failed (reason)"
    assigned: tuple[str, ...]  # "n1 started"
    epoch: int
    failcounts: tuple[str, ...]  # "n1: 2"
    why: tuple[str, ...]
    pending: tuple[str, ...]  # action lines of the scheduler for this resource
    promotion_scores: Mapping[str, int] = field(default_factory=dict)  # node -> score


@dataclass(frozen=True, slots=True)
class StatusReport:
    cluster: str
    quorum: bool
    controller: Controller | None = None
    revision: int = 0
    nodes: tuple[NodeRow, ...] = ()
    resources: tuple[ResourceRow, ...] = ()
    decisions: tuple[Decision, ...] = ()
    transition: Transition = field(default_factory=Transition)
    failed: tuple[str, ...] = ()  # "web on n1: monitor rc=7 ..."
    warnings: tuple[str, ...] = ()  # "the stored config (revision 9) is refused: ..."

    @property
    def problems(self) -> list[str]:
        out = [str(d) for d in self.decisions if d.kind in PROBLEMS]
        return out + [f"failed: {f}" for f in self.failed]

    @property
    def exit_code(self) -> int:
        if not self.quorum:
            return 2
        return 1 if self.problems else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "quorum": self.quorum,
            "controller": (
                None
                if self.controller is None
                else {"node": self.controller.node, "term": self.controller.term}
            ),
            "revision": self.revision,
            "nodes": [
                {
                    "name": n.name,
                    "state": n.state,
                    "standby": n.standby,
                    "maintenance": n.maintenance,
                    "controller": n.controller,
                    "note": n.note,
                    "attributes": dict(n.attributes),
                }
                for n in self.nodes
            ],
            "resources": [
                {
                    "id": r.id,
                    "unit": r.unit,
                    "target_role": r.target,
                    "target_role_override": r.override,
                    "running": list(r.running),
                    "assigned": list(r.assigned),
                    "epoch": r.epoch,
                    "failcounts": list(r.failcounts),
                    "why": list(r.why),
                    "pending": list(r.pending),
                    "promotion_scores": dict(r.promotion_scores),
                }
                for r in self.resources
            ],
            "transition": self.transition.to_dict(),
            "problems": self.problems,
            "warnings": list(self.warnings),
            "exit_code": self.exit_code,
        }


# --- collecting ------------------------------------------------------------------------------


async def collect_status(store: ClusterStore, spec: ClusterSpec, now: float) -> StatusReport:
    """The report of the live cluster, read from one snapshot (the controller's own view)."""
    if not await store.has_quorum():
        # Reads go through the consensus log: without a majority they cannot be answered.
        return StatusReport(spec.options.name, quorum=False)
    controller = await store.controller()
    snapshot = await observe_cluster(store, spec, now)
    effective, observed, transition = snapshot.spec, snapshot.observed, snapshot.transition()
    failed_fences = await _failed_fences(store, transition, now)
    nodes = tuple(
        NodeRow(
            n.name,
            "fenced" if n.status == "lost" and n.fenced else n.status,
            n.standby or _spec_flag(spec, n.name, "standby"),
            n.maintenance or _spec_flag(spec, n.name, "maintenance"),
            controller is not None and controller.node == n.name,
            "; ".join(filter(None, (_node_note(transition, n.name), failed_fences.get(n.name)))),
            dict(n.attributes),
        )
        for n in observed.state.nodes
    )
    down = {n.name for n in observed.state.nodes if n.down}
    lost = {n.name for n in observed.state.nodes if n.unclean}
    rows = tuple(
        _resource_row(effective, observed, transition, p.id, down, lost) for p in spec.primitives
    )
    failed = tuple(
        f"{s.resource} on {s.node}: {s.op or 'monitor'} rc={s.rc}"
        + (f" ({s.reason})" if s.reason else "")
        for s in observed.statuses
        if s.role == "failed" and s.node not in down
    )
    refused = await store.stored_config_problem()
    warnings = (() if refused is None else (refused.warning(),)) + await _job_warnings(store, now)
    return StatusReport(
        spec.options.name,
        True,
        controller,
        observed.revision,
        nodes,
        rows,
        transition.decisions,
        transition,
        failed,
        warnings,
    )


async def _job_warnings(store: ClusterStore, now: float) -> tuple[str, ...]:
    """A scheduled job (backup, drill) whose last run failed, or that is overdue."""
    found: list[str] = []
    for name, job in sorted((await store.jobs().records()).items()):
        if job.failing():
            found.append(f"scheduled {name} failed: {job.reason}")
        if job.overdue(now):
            last = job.last_ok if job.last_ok is not None else job.since
            found.append(
                f"scheduled {name} overdue: no success for {short_duration(now - last)} "
                f"(every {short_duration(job.period)}); see `hakeeper events`"
            )
    return tuple(found)


async def _failed_fences(store: ClusterStore, tr: Transition, now: float) -> dict[str, str]:
    """For nodes still waiting to be fenced: the last attempt, if it failed (from the log)."""
    pending = {a.node for a in tr.actions if a.kind == "fence"}
    if not pending:
        return {}
    last: dict[str, NodeFenced] = {}
    for event in await store.event_log("cli").read():
        if isinstance(event, NodeFenced) and event.node in pending:
            last[event.node] = event
    return {
        node: f"last fence attempt failed ({e.device}, {now - e.ts:.0f} s ago); retrying"
        for node, e in last.items()
        if not e.ok
    }


def _node_note(tr: Transition, node: str) -> str:
    notes = [
        d.message
        for d in tr.decisions
        if d.node == node and d.resource is None and d.kind in ("fence", "self-fenced")
    ]
    if any(a.kind == "fence" and a.node == node for a in tr.actions):
        notes.append(f"in progress: fence {node}")
    return "; ".join(notes)


def _spec_flag(spec: ClusterSpec, node: str, flag: str) -> bool:
    ns = spec.node(node)
    return bool(ns is not None and getattr(ns, flag))


def _target(spec: ClusterSpec, unit: str) -> str:
    for clone in spec.clones:
        if clone.id == unit:
            return clone.target_role
    for group in spec.groups:
        if group.id == unit:
            return group.target_role
    primitive = spec.primitive(unit)
    return primitive.meta.target_role if primitive else "started"


def _resource_row(
    spec: ClusterSpec,
    observed: Observed,
    tr: Transition,
    rid: str,
    down: set[str],
    lost: set[str],
) -> ResourceRow:
    unit = spec.top_level(rid)
    promotion = observed.state.promotion_scores
    scores = promotion.get(rid) or promotion.get(unit) or {}
    running = []
    for s in sorted(observed.statuses, key=lambda s: (s.node, s.instance)):
        if s.resource != rid or s.role == "stopped":
            continue
        inst = f"#{s.instance}" if s.instance else ""
        note = " (node down: stale)" if s.node in down else ""
        note = " (node lost: may still run)" if s.node in lost else note
        reason = f" ({s.reason})" if s.role == "failed" and s.reason else ""
        score = scores.get(s.node)
        shown = "" if score is None else f" (promotion score {format_score(score)})"
        running.append(f"{s.node}{inst} {s.role}{shown}{reason}{note}")
    assignment = observed.assignments.get(rid)
    assigned = tuple(
        f"{p.node}{'#' + str(p.instance) if p.instance else ''} {p.role}"
        for p in (assignment.placements if assignment else ())
    )
    related = {rid, unit, *(g.id for g in spec.groups if rid in g.members)}
    why = tuple(d.message for d in tr.decisions if d.kind in WHY and d.resource in related)
    pending = tuple(
        a.key + _after(tr, i)
        for i, a in enumerate(tr.actions)
        if a.resource == rid and a.kind != "monitor"
    )
    return ResourceRow(
        rid,
        unit,
        _target(spec, unit),
        bool(related & set(observed.target_roles)),
        tuple(running),
        assigned,
        assignment.epoch if assignment else 0,
        tuple(f"{f.node}: {f.count}" for f in observed.state.failcounts if f.resource == rid),
        why,
        pending,
        dict(scores),
    )


def _after(tr: Transition, i: int) -> str:
    needs = [tr.actions[j].key for j in tr.needs(i)]
    return f" (after {', '.join(needs)})" if needs else ""
