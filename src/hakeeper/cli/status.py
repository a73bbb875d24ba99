"""`hakeeper status`: one screen of the live cluster, like crm_mon.

Quorum, the controller, every node, and every resource: where it runs and in which role,
what the controller assigned (and under which epoch), fail counts, and *why* something does
not run — the pure scheduler is run on the same snapshot the controller reads (with the
CLI's target-role overrides applied), so its decisions (blocked, cannot-run, unmanaged…) and
its pending actions ("start web on n2") are the controller's own reasons.

Exit status: 0 quorate and nothing blocked or failed; 1 something is blocked, cannot run or
failed; 2 no quorum or the engine is unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from hakeeper.cli import cluster_client as cc
from hakeeper.cli.cluster_client import ConfigOption, JsonOption
from hakeeper.coord.base import Coordinator
from hakeeper.errors import CoordError
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.events import NodeFenced
from hakeeper.model.transition import Decision, Transition
from hakeeper.policy.scheduler import schedule
from hakeeper.runtime.election import Controller, ControllerElection
from hakeeper.runtime.events_log import EventLog
from hakeeper.runtime.overrides import apply_overrides
from hakeeper.runtime.store import Observed

#: Decisions that explain why something does not run where it should.
WHY = ("blocked", "cannot-run", "unmanaged", "frozen", "stop", "no-quorum", "self-fenced")
#: Decisions that make ``status`` exit 1.
PROBLEMS = ("blocked", "cannot-run")
REFRESH = 2.0

console = Console(soft_wrap=True)


@dataclass(frozen=True, slots=True)
class NodeRow:
    name: str
    state: str  # online | offline | lost | fenced
    standby: bool
    maintenance: bool
    controller: bool
    note: str = ""  # the scheduler about this node: fence pending, self-fenced


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
                }
                for r in self.resources
            ],
            "transition": self.transition.to_dict(),
            "problems": self.problems,
            "warnings": list(self.warnings),
            "exit_code": self.exit_code,
        }


# --- collecting --------------------------------------------------------------------------------


async def observe_live(
    coord: Coordinator, spec: ClusterSpec, now: float
) -> tuple[ClusterSpec, Observed, Transition]:
    """The controller's view: snapshot, overrides applied, the scheduler's transition."""
    observed = await cc.store_of(coord, spec).observe(spec, now)
    effective = apply_overrides(spec, observed.target_roles)
    return effective, observed, schedule(effective, observed.state)


async def collect_status(coord: Coordinator, spec: ClusterSpec, now: float) -> StatusReport:
    if not await coord.has_quorum():
        # Reads go through the consensus log: without a majority they cannot be answered.
        return StatusReport(spec.options.name, quorum=False)
    controller = await ControllerElection(coord, cc.keyspace(spec), "cli").current()
    effective, observed, transition = await observe_live(coord, spec, now)
    failed_fences = await _failed_fences(coord, spec, transition, now)
    nodes = tuple(
        NodeRow(
            n.name,
            "fenced" if n.status == "lost" and n.fenced else n.status,
            n.standby or _spec_flag(spec, n.name, "standby"),
            n.maintenance or _spec_flag(spec, n.name, "maintenance"),
            controller is not None and controller.node == n.name,
            "; ".join(filter(None, (_node_note(transition, n.name), failed_fences.get(n.name)))),
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
    refused = await cc.store_of(coord, spec).stored_config_problem()
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
        () if refused is None else (refused.warning(),),
    )


async def _failed_fences(
    coord: Coordinator, spec: ClusterSpec, tr: Transition, now: float
) -> dict[str, str]:
    """For nodes still waiting to be fenced: the last attempt, if it failed (from the log)."""
    pending = {a.node for a in tr.actions if a.kind == "fence"}
    if not pending:
        return {}
    last: dict[str, NodeFenced] = {}
    for event in await EventLog(coord, cc.keyspace(spec), "cli").read():
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
    running = []
    for s in sorted(observed.statuses, key=lambda s: (s.node, s.instance)):
        if s.resource != rid or s.role == "stopped":
            continue
        inst = f"#{s.instance}" if s.instance else ""
        note = " (node down: stale)" if s.node in down else ""
        note = " (node lost: may still run)" if s.node in lost else note
        reason = f" ({s.reason})" if s.role == "failed" and s.reason else ""
        running.append(f"{s.node}{inst} {s.role}{reason}{note}")
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
    )


def _after(tr: Transition, i: int) -> str:
    needs = [tr.actions[j].key for j in tr.needs(i)]
    return f" (after {', '.join(needs)})" if needs else ""


# --- rendering ------------------------------------------------------------------------------


def render(report: StatusReport, now: float | None = None) -> RenderableType:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now or time.time()))
    if not report.quorum:
        return Text.from_markup(
            f"[bold]cluster {report.cluster}[/]  {stamp}\n[red bold]NO QUORUM[/]: the engine "
            "cannot commit; nothing can be read or changed until a majority of nodes is back"
        )
    ctl = (
        f"{report.controller.node} (term {report.controller.term})"
        if report.controller
        else "[yellow]none elected[/]"
    )
    header = Text.from_markup(
        f"[bold]cluster {report.cluster}[/]  quorum: [green]yes[/]  controller: {ctl}  "
        f"revision {report.revision}  {stamp}"
    )
    nodes = Table(title="nodes", title_justify="left")
    for col in ("node", "state", "flags", "note"):
        nodes.add_column(col)
    colours = {"online": "green", "offline": "dim", "lost": "red bold", "fenced": "yellow"}
    for n in report.nodes:
        flags = [f for f, on in (("standby", n.standby), ("maintenance", n.maintenance)) if on]
        if n.controller:
            flags.append("controller")
        nodes.add_row(
            n.name, f"[{colours[n.state]}]{n.state}[/]", ", ".join(flags), f"[yellow]{n.note}[/]"
        )
    res = Table(title="resources", title_justify="left")
    for col in ("resource", "target", "running", "assigned (epoch)", "fail counts", "why"):
        res.add_column(col)
    for r in report.resources:
        name = r.id if r.unit == r.id else f"{r.id} [dim]({r.unit})[/]"
        target = r.target + (" [dim](cli)[/]" if r.override else "")
        running = "\n".join(_colour_role(x) for x in r.running) or "[dim]—[/]"
        assigned = "\n".join(r.assigned) + (f" [dim]({r.epoch})[/]" if r.assigned else "—")
        why = [f"[red]{w}[/]" for w in r.why] + [f"[cyan]in progress: {p}[/]" for p in r.pending]
        res.add_row(name, target, running, assigned, ", ".join(r.failcounts), "\n".join(why))
    parts: list[RenderableType] = [header, nodes, res]
    others = [d for d in report.decisions if d.kind in WHY and d.resource is None]
    if others:
        parts.append(Text.from_markup("\n".join(f"[red]{d}[/]" for d in others)))
    if report.failed:
        parts.append(Text.from_markup("\n".join(f"[red]failed[/]: {f}" for f in report.failed)))
    for warning in report.warnings:
        parts.append(Text.assemble(("warning", "yellow bold"), f": {warning}"))
    return Group(*parts)


def _colour_role(text: str) -> str:
    for role, colour in (("promoted", "blue"), ("started", "green"), ("failed", "red")):
        if f" {role}" in text:
            return text.replace(f" {role}", f" [{colour}]{role}[/]", 1)
    return text


# --- watching --------------------------------------------------------------------------------


async def watch_status(
    coord: Coordinator,
    spec: ClusterSpec,
    out: Console,
    *,
    refresh: float = REFRESH,
    frames: int | None = None,
) -> int:
    """Redraw on every change under the cluster prefix, and at least every ``refresh`` s.

    Engine trouble is shown on the screen and retried, not fatal: an operator watches a
    failover precisely when the engine may be briefly unavailable. ``frames`` bounds the
    number of redraws (tests)."""
    changed = asyncio.Event()

    async def pump() -> None:
        keys = cc.keyspace(spec)
        while True:
            try:
                async with contextlib.aclosing(coord.watch(keys.root)) as changes:
                    async for _ in changes:
                        changed.set()
            except CoordError:
                await asyncio.sleep(refresh)  # the periodic refresh covers the gap

    code = 0
    with Live(console=out, auto_refresh=False, transient=False) as live:
        watcher = asyncio.create_task(pump(), name="status-watch")
        try:
            drawn = 0
            while frames is None or drawn < frames:
                changed.clear()
                try:
                    report = await collect_status(coord, spec, cc.wall())
                    live.update(render(report), refresh=True)
                    code = report.exit_code
                except CoordError as exc:
                    live.update(Text(f"engine trouble, retrying: {cc.describe(exc)}"), refresh=True)
                    code = 2
                drawn += 1
                if frames is not None and drawn >= frames:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), refresh)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    return code


# --- the commands -----------------------------------------------------------------------------


def status(
    config: ConfigOption = cc.DEFAULT_CONFIG,
    as_json: JsonOption = False,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Redraw on every change; Ctrl-C ends.")
    ] = False,
    plan: Annotated[
        bool,
        typer.Option("--plan", help="Show the scheduler's full transition for the live cluster."),
    ] = False,
) -> None:
    """One screen of the cluster: quorum, controller, nodes, resources, and why.

    Exit status 0 when quorate and nothing is blocked or failed, 1 when something is, 2 on no
    quorum or an unreachable engine."""

    async def body(coord: Coordinator, spec: ClusterSpec) -> int:
        if watch:
            return await watch_status(coord, spec, console)
        report = await collect_status(coord, spec, cc.wall())
        if as_json:
            typer.echo(json.dumps(report.to_dict(), indent=2))
        elif plan:
            print_live_plan(report)
        else:
            console.print(render(report))
        return report.exit_code

    cc.run_command("status", config, body, interrupt_code=0)


def print_live_plan(report: StatusReport) -> None:
    """The transition the controller is working through, in `hakeeper plan`'s table."""
    from hakeeper.cli.plan import print_transition

    if not report.quorum:
        console.print(render(report))
        return
    print_transition(report.transition)
