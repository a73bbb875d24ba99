"""`hakeeper availability`: the arithmetic, the measured figures and the simulation.

Every command prints rich tables for people and, with ``--json``, one JSON document for
scripts (durations in seconds, availabilities as fractions). Bad input exits with status 2
and a message that names the option or file key and the fix.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from hakeeper.availability import calc, measure, report_html, services, simulate, topology
from hakeeper.errors import ConfigError
from hakeeper.model.availability_units import (
    PERIODS,
    format_duration,
    format_percent,
    parse_availability,
    parse_sla,
)
from hakeeper.model.durations import parse_duration
from hakeeper.model.events import parse_lines

app = typer.Typer(
    help="Availability: MTBF/MTTR arithmetic, measured figures from the event log, simulation.",
    no_args_is_help=True,
)
console = Console()

P = ParamSpec("P")
R = TypeVar("R")


def _reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn a ConfigError into a one-line message and exit status 2 (no traceback)."""

    # functools.wraps keeps the signature and annotations typer builds the options from.
    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ConfigError as exc:
            typer.echo(f"hakeeper availability: {exc}", err=True)
            raise typer.Exit(2) from exc

    return wrapper


def _nines(a: float) -> str:
    value = calc.nines(a)
    return "∞" if math.isinf(value) else f"{value:.2f}"


def _dur(value: float | None) -> str:
    """Two units are enough in a table cell: "7 min 12 s", "83 d 8 h"."""
    return "—" if value is None else format_duration(value, 2)


def _emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, allow_nan=False, default=_json_default))


def _json_default(value: object) -> Any:
    raise TypeError(f"not JSON serialisable: {value!r}")


def _clean(value: float | None) -> float | None:
    """JSON has no infinity: an infinite MTBF (never fails) is written as null."""
    return None if value is None or math.isinf(value) else value


def _figures_dict(figures: calc.Figures) -> dict[str, Any]:
    return {
        "availability": figures.availability,
        "nines": _clean(calc.nines(figures.availability)),
        "mtbf": _clean(figures.mtbf),
        "mttr": _clean(figures.mttr),
        "downtime": calc.downtime_per_period(figures.availability),
    }


def _downtime_table(rows: list[tuple[str, float]]) -> Table:
    table = Table(title="Expected downtime", title_justify="left")
    table.add_column("")
    for period in PERIODS:
        table.add_column(f"per {period}", justify="right")
    for label, a in rows:
        table.add_row(label, *(format_duration(v) for v in calc.downtime_per_period(a).values()))
    return table


# --- calc -------------------------------------------------------------------------------------


@app.command("calc")
@_reports_errors
def calc_command(
    mtbf: Annotated[
        str | None, typer.Option(help="Mean time between failures, e.g. 2000h.")
    ] = None,
    mttr: Annotated[str | None, typer.Option(help="Mean time to repair, e.g. 30m.")] = None,
    availability: Annotated[
        str | None, typer.Option("--availability", "-a", help="A known availability: 99.9%.")
    ] = None,
    n: Annotated[int, typer.Option("--n", help="Identical members in the group.")] = 1,
    k: Annotated[int, typer.Option("--k", help="Members that must be up (1 = parallel).")] = 1,
    failover: Annotated[
        str, typer.Option(help="Switch-over time when an active member fails, e.g. 5s.")
    ] = "0s",
    target: Annotated[
        str | None, typer.Option(help="Target availability for the inverse questions: 99.99%.")
    ] = None,
    sla: Annotated[str | None, typer.Option(help="Compare with an SLA: '99.95% monthly'.")] = None,
    topology_file: Annotated[
        Path | None, typer.Option("--topology", help="A TOML topology (docs/availability.md).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """A from MTBF and MTTR, groups (parallel, k-of-n) with failover cost, topologies,
    the inverse questions and an SLA comparison."""
    result: dict[str, Any] = {}
    if topology_file is not None:
        tree = topology.evaluate(topology.load(topology_file), str(topology_file))
        system = tree.figures
        result["topology"] = _tree_dict(tree)
        member: calc.Figures | None = None
    else:
        member = _member(mtbf, mttr, availability)
        result["component"] = _figures_dict(member)
        system = member
        if n > 1 or k > 1:
            system = calc.group(
                k, [member] * n, parse_duration(failover, what="--failover", unit_required=True)
            )
            result["group"] = {
                "k": k,
                "n": n,
                "failover": parse_duration(failover, unit_required=True),
            }
            result["group"].update(_figures_dict(system))
    result["system"] = _figures_dict(system)
    inverse = _inverse(member, k, n, failover, target) if target is not None else None
    if inverse is not None:
        result["inverse"] = inverse
    sla_result = _sla(system.availability, sla) if sla is not None else None
    if sla_result is not None:
        result["sla"] = sla_result
    if as_json:
        _emit_json(result)
        return
    if topology_file is not None:
        console.print(_render_tree(tree))
    else:
        _print_component(member, system, k, n, failover)
    console.print(_downtime_table([("system", system.availability)]))
    if inverse is not None:
        _print_inverse(inverse)
    if sla_result is not None:
        _print_sla(sla_result)


def _member(mtbf: str | None, mttr: str | None, availability: str | None) -> calc.Figures:
    if availability is not None:
        if mtbf or mttr:
            raise ConfigError("give --availability or --mtbf/--mttr, not both")
        return calc.Figures(parse_availability(availability, "--availability"))
    if mtbf is None or mttr is None:
        raise ConfigError(
            "give --mtbf and --mttr (e.g. --mtbf 2000h --mttr 30m), --availability 99.9%, "
            "or --topology FILE"
        )
    return calc.component(
        parse_duration(mtbf, what="--mtbf", unit_required=True),
        parse_duration(mttr, what="--mttr", unit_required=True),
    )


def _tree_dict(node: topology.Evaluated) -> dict[str, Any]:
    return {
        "name": node.name,
        "kind": node.kind,
        "required": node.required,
        "failover": node.failover,
        **_figures_dict(node.figures),
        "members": [_tree_dict(m) for m in node.members],
    }


def _render_tree(node: topology.Evaluated) -> Tree:
    def label(e: topology.Evaluated) -> str:
        f = e.figures
        kind = e.kind
        if e.kind == "k-of-n":
            kind = f"{e.required}-of-{len(e.members)}"
        extra = f", failover {format_duration(e.failover)}" if e.failover else ""
        repair = f" · MTBF {_dur(f.mtbf)} · MTTR {_dur(f.mttr)}" if f.mtbf is not None else ""
        return (
            f"[bold]{e.name}[/] ({kind}{extra}): {format_percent(f.availability)} "
            f"· {_nines(f.availability)} nines{repair} "
            f"· {format_duration(calc.downtime_per_period(f.availability)['year'])}/year"
        )

    def grow(branch: Tree, e: topology.Evaluated) -> None:
        # Identical copies (member + count) are shown once with their count.
        seen: dict[str, int] = {}
        for m in e.members:
            seen[m.name] = seen.get(m.name, 0) + 1
        shown: set[str] = set()
        for m in e.members:
            if m.name in shown:
                continue
            shown.add(m.name)
            times = f"{seen[m.name]} × " if seen[m.name] > 1 else ""
            grow(branch.add(times + label(m)), m)

    root = Tree(label(node))
    grow(root, node)
    return root


def _print_component(
    member: calc.Figures | None, system: calc.Figures, k: int, n: int, failover: str
) -> None:
    table = Table(title="Availability", title_justify="left")
    for column in ("", "availability", "nines", "MTBF", "MTTR"):
        table.add_column(column, justify="left" if not column else "right")
    if member is not None:
        table.add_row(
            "one component",
            format_percent(member.availability),
            _nines(member.availability),
            _dur(member.mtbf),
            _dur(member.mttr),
        )
    if system is not member:
        what = "parallel" if k == 1 else f"{k}-of-{n}"
        fo = parse_duration(failover, unit_required=True)
        name = f"{n} in {what}" + (f", failover {format_duration(fo)}" if fo else "")
        table.add_row(
            name,
            format_percent(system.availability),
            _nines(system.availability),
            _dur(system.mtbf),
            _dur(system.mttr),
        )
    console.print(table)


def _inverse(
    member: calc.Figures | None, k: int, n: int, failover: str, target_text: str
) -> dict[str, Any]:
    target = parse_availability(target_text, "--target")
    out: dict[str, Any] = {"target": target}
    if member is None:
        return out
    fo = parse_duration(failover, what="--failover", unit_required=True)
    if member.mtbf is not None and member.mttr is not None:
        out["mttr_needed"] = calc.mttr_for_target(member.mtbf, target)
        out["mtbf_needed"] = calc.mtbf_for_target(member.mttr, target)
    out["smallest_n"] = calc.smallest_n(k, member, target)
    if fo > 0 and member.mtbf is not None:
        out["smallest_n_with_failover"] = calc.smallest_n(k, member, target, fo)
    if member.mtbf is not None:
        group_n = max(n, k + 1)
        longest = calc.failover_for_target(k, group_n, member, target)
        out["longest_failover"] = {
            "n": group_n,
            "seconds": _clean(longest),  # null: any failover time will do
            "reachable": longest is not None,
        }
    return out


def _print_inverse(inverse: dict[str, Any]) -> None:
    target = format_percent(inverse["target"])
    table = Table(title=f"What reaches {target}?", title_justify="left", show_header=False)
    table.add_column("question")
    table.add_column("answer", justify="right")
    if "mttr_needed" in inverse:
        table.add_row("MTTR needed at this MTBF (one component)", _dur(inverse["mttr_needed"]))
        table.add_row("MTBF needed at this MTTR (one component)", _dur(inverse["mtbf_needed"]))

    def members(value: int | None) -> str:
        return "not within 64" if value is None else str(value)

    if "smallest_n" in inverse:
        table.add_row("members needed, instant failover", members(inverse["smallest_n"]))
    if "smallest_n_with_failover" in inverse:
        table.add_row(
            "members needed, with this failover time",
            members(inverse["smallest_n_with_failover"]),
        )
    if "longest_failover" in inverse:
        longest = inverse["longest_failover"]
        seconds = longest["seconds"]
        if not longest["reachable"]:
            text = "unreachable even if instant"
        else:
            text = "any" if seconds is None else _dur(seconds)
        table.add_row(f"longest failover allowed with {longest['n']} members", text)
    console.print(table)


def _sla(a: float, text: str) -> dict[str, Any]:
    target, period, name = parse_sla(text, "--sla")
    budget = calc.sla_budget(target, period)
    expected = calc.downtime(a, period)
    return {
        "target": target,
        "period": name,
        "period_seconds": period,
        "budget": budget,
        "expected_downtime": expected,
        "meets": a >= target,
    }


def _print_sla(sla: dict[str, Any]) -> None:
    verdict = "[green]meets it[/]" if sla["meets"] else "[red]misses it[/]"
    console.print(
        f"SLA {format_percent(sla['target'])} per {sla['period']} allows "
        f"[bold]{format_duration(sla['budget'])}[/] of downtime; expected "
        f"{format_duration(sla['expected_downtime'])}: {verdict}"
        f" (month = 365.25/12 days)"
    )


# --- report -----------------------------------------------------------------------------------


def _timestamp(text: str, what: str) -> float:
    """Unix seconds or an ISO 8601 time (``2024-07-01T00:00:00Z``; UTC when no zone)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(
            f"{what}: cannot read {text!r}; give Unix seconds or 2024-07-01T00:00:00Z"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def load_report(
    events: Path,
    services_file: Path | None,
    target: str | None,
    start: str | None,
    end: str | None,
    window: str | None,
) -> measure.Report:
    try:
        with events.open(encoding="utf-8") as lines:
            parsed = list(parse_lines(lines, str(events)))
    except OSError as exc:
        raise ConfigError(f"{events}: cannot read ({exc.strerror})") from exc
    rules = services.load(services_file) if services_file else services.Services()
    lo = _timestamp(start, "--start") if start else None
    hi = _timestamp(end, "--end") if end else None
    if window is not None:
        if lo is not None and hi is not None:
            raise ConfigError("give at most two of --start, --end and --window")
        length = parse_duration(window, what="--window", unit_required=True)
        if lo is not None:
            hi = lo + length
        else:
            hi = hi if hi is not None else max(e.ts for e in parsed) if parsed else 0.0
            lo = hi - length
    chosen = parse_availability(target, "--target") if target else None
    return measure.measure(parsed, rules, lo, hi, chosen)


@app.command("report")
@_reports_errors
def report_command(
    events: Annotated[Path, typer.Option(help="The event log, one JSON object per line.")],
    services_file: Annotated[
        Path | None, typer.Option("--services", help="What counts as up (TOML).")
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="SLA target when the services file gives none: 99.95%.")
    ] = None,
    start: Annotated[str | None, typer.Option(help="Window start: Unix s or ISO 8601.")] = None,
    end: Annotated[str | None, typer.Option(help="Window end (default: last event).")] = None,
    window: Annotated[str | None, typer.Option(help="Window length, e.g. 30d.")] = None,
    html: Annotated[Path | None, typer.Option(help="Also write an HTML report here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Measured availability per service, resource and node from the cluster's event log."""
    result = load_report(events, services_file, target, start, end, window)
    if html is not None:
        try:
            html.write_text(report_html.render(result), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--html {html}: cannot write ({exc.strerror})") from exc
    if as_json:
        _emit_json(result.to_dict())
        return
    _print_report(result)
    if html is not None:
        console.print(f"HTML report written to {html}")


def _print_report(report: measure.Report) -> None:
    begin = datetime.fromtimestamp(report.start, UTC).strftime("%Y-%m-%d %H:%M")
    finish = datetime.fromtimestamp(report.end, UTC).strftime("%Y-%m-%d %H:%M")
    table = Table(
        title=f"Measured {begin} → {finish} UTC ({format_duration(report.end - report.start)})",
        title_justify="left",
    )
    for column in (
        "what",
        "availability",
        "target",
        "down",
        "fail",
        "MTBF",
        "MTTR",
        "longest",
        "failovers",
        "budget",
    ):
        table.add_column(column, justify="left" if column == "what" else "right")
    rows = [
        *((f"service {s.name}", s) for s in report.services),
        *((f"resource {s.name}", s) for s in report.resources),
        *((f"node {s.name}", s) for s in report.nodes),
        ("quorum", report.quorum),
    ]
    for label, s in rows:
        longest = s.longest
        used = s.budget_used
        budget = "—" if used is None else f"{used * 100:.1f}%"
        if used is not None and used > 1:
            budget = f"[red]{budget}[/]"
        failovers = f"{len(s.failovers)}, max {_dur(max(s.failovers))}" if s.failovers else ""
        table.add_row(
            label,
            "—" if s.availability is None else format_percent(s.availability),
            "—" if s.target is None else format_percent(s.target),
            _dur(s.downtime),
            str(s.failures),
            _dur(s.mtbf),
            _dur(s.mttr),
            _dur(longest.duration if longest else None),
            failovers,
            budget,
        )
    console.print(table)
    notes = [f"{report.controller_elections} controller election(s)"]
    if report.fencings:
        notes.append(f"{len(report.fencings)} fencing(s), max {_dur(max(report.fencings))}")
    if report.failed_fencings:
        notes.append(f"[red]{report.failed_fencings} failed fencing(s)[/]")
    for s in report.resources:
        if s.concurrent > 0:
            notes.append(f"[red]{s.name} ran twice for {format_duration(s.concurrent)}[/]")
        if s.unfinished_failovers:
            notes.append(f"{s.name}: {s.unfinished_failovers} unfinished failover(s)")
    console.print(" · ".join(notes))
    for d in report.drills:
        when = datetime.fromtimestamp(d.ts, UTC).strftime("%Y-%m-%d %H:%M")
        verdict = "passed" if d.ok else f"[red]failed[/] ({escape(d.reason)})"
        console.print(
            f"restore drill {when} of backup {d.backup_id}: {verdict}, "
            f"RTO {_dur(d.rto)}, RPO {_dur(d.rpo)}"
        )


# --- simulate ---------------------------------------------------------------------------------


@app.command("simulate")
@_reports_errors
def simulate_command(
    nodes: Annotated[int, typer.Option(help="Nodes in the cluster.")] = 3,
    mtbf: Annotated[
        str | None, typer.Option(help="Node up time: 2000h (exponential) or fixed:2000h.")
    ] = None,
    mttr: Annotated[str | None, typer.Option(help="Node repair time: 4h or fixed:4h.")] = None,
    failover: Annotated[
        str | None,
        typer.Option(help="Failover time of the exclusive resource: 4s (fixed) or exp:4s."),
    ] = None,
    fencing: Annotated[
        str | None, typer.Option(help="Fencing time per failover: 10s (fixed) or exp:10s.")
    ] = None,
    voters: Annotated[
        int | None, typer.Option(help="Coordination members (default: all nodes; 0: no quorum).")
    ] = None,
    clone_required: Annotated[int, typer.Option(help="Clone instances that must run.")] = 1,
    events: Annotated[
        Path | None, typer.Option(help="Take node MTBF/MTTR and failover times from this log.")
    ] = None,
    trials: Annotated[int, typer.Option(help="Simulated years.")] = 2000,
    seed: Annotated[int, typer.Option(help="RNG seed (same seed, same answer).")] = 1,
    horizon: Annotated[str, typer.Option(help="Length of one trial.")] = "1y",
    target: Annotated[str | None, typer.Option(help="Target, e.g. 99.99%.")] = None,
    what_if: Annotated[
        bool, typer.Option("--what-if/--no-what-if", help="Also try +1 node and faster failover.")
    ] = True,
    faster: Annotated[float, typer.Option(help="Failover factor for the what-if.")] = 0.5,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Monte Carlo years of the cluster: downtime distribution with confidence intervals."""
    model = _model_from_options(
        nodes, mtbf, mttr, failover, fencing, voters, clone_required, events, horizon
    )
    chosen = parse_availability(target, "--target") if target else None
    if what_if:
        runs = simulate.what_if(model, trials, seed, chosen, faster)
    else:
        runs = [("as configured", simulate.simulate(model, trials, seed, chosen))]
    if as_json:
        _emit_json([{"scenario": name, **result.to_dict()} for name, result in runs])
        return
    _print_simulation(runs)


def _model_from_options(
    nodes: int,
    mtbf: str | None,
    mttr: str | None,
    failover: str | None,
    fencing: str | None,
    voters: int | None,
    clone_required: int,
    events: Path | None,
    horizon: str,
) -> simulate.ClusterModel:
    """Explicit options win; the event log fills in what is left; then the defaults."""
    measured: dict[str, simulate.Distribution] = {}
    if events is not None:
        measured = _measured_distributions(load_report(events, None, None, None, None, None))
    if mtbf is None and "node_up" not in measured:
        raise ConfigError("give --mtbf (e.g. 2000h) or --events with node failures in it")
    if mttr is None and "node_down" not in measured:
        raise ConfigError("give --mttr (e.g. 4h) or --events with node repairs in it")

    def pick(
        text: str | None, key: str, default: str, what: str, bare: str = "exp"
    ) -> simulate.Distribution:
        if text is not None:
            return simulate.parse_distribution(text, what, bare)
        return measured.get(key) or simulate.parse_distribution(default, what, bare)

    return simulate.ClusterModel(
        nodes=nodes,
        node_up=pick(mtbf, "node_up", "", "--mtbf"),
        node_down=pick(mttr, "node_down", "", "--mttr"),
        failover=pick(failover, "failover", "fixed:4s", "--failover", "fixed"),
        fencing=pick(fencing, "fencing", "fixed:0s", "--fencing", "fixed"),
        voters=voters,
        clone_required=clone_required,
        horizon=parse_duration(horizon, what="--horizon", unit_required=True),
    ).check()


def _measured_distributions(report: measure.Report) -> dict[str, simulate.Distribution]:
    """Node up/down means (exponential: too few samples for a shape) and the measured
    failover durations resampled as they are. A measured failover already includes fencing,
    so fencing is then zero."""
    out: dict[str, simulate.Distribution] = {}
    uptime = sum(s.uptime for s in report.nodes)
    failures = sum(s.failures for s in report.nodes)
    outages = sum(len(s.outages) for s in report.nodes)
    if failures:
        out["node_up"] = simulate.Exponential(uptime / failures)
    if outages:
        out["node_down"] = simulate.Exponential(sum(s.downtime for s in report.nodes) / outages)
    durations = tuple(d for s in report.resources for d in s.failovers)
    if durations:
        out["failover"] = simulate.Empirical(durations)
        out["fencing"] = simulate.Fixed(0.0)
    return out


def _print_simulation(runs: list[tuple[str, simulate.Result]]) -> None:
    base = runs[0][1]
    m = base.model
    console.print(
        f"{base.trials} simulated {format_duration(m.horizon)} of {m.nodes} nodes "
        f"(quorum {m.quorum_size or 'off'}), seed {base.seed}\n"
        f"  node up: {m.node_up.describe()} · repair: {m.node_down.describe()}\n"
        f"  failover: {m.failover.describe()} · fencing: {m.fencing.describe()}"
    )
    table = Table(
        title=f"Downtime per {format_duration(m.horizon)} (mean ± 95 % CI, percentiles)",
        title_justify="left",
    )
    for column in ("scenario", "what", "mean", "± 95%", "p50", "p95", "p99", "A"):
        table.add_column(column, justify="left" if column in ("scenario", "what") else "right")
    has_target = base.service.target is not None
    if has_target:
        table.add_column(f"≤ {format_percent(base.service.target or 0)}", justify="right")
    for name, result in runs:
        for summary in (result.exclusive, result.clone, result.service):
            low, high = summary.ci95
            row = [
                name,
                summary.name,
                _dur(summary.mean),
                _dur((high - low) / 2),
                _dur(summary.percentile(50)),
                _dur(summary.percentile(95)),
                _dur(summary.percentile(99)),
                format_percent(summary.availability),
            ]
            if has_target:
                row.append(f"{(summary.meets_target or 0) * 100:.1f}%")
            table.add_row(*row)
            name = ""
        table.add_section()
    console.print(table)
