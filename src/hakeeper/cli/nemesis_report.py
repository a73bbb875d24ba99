"""The report of a nemesis run: every invariant, what the faults cost, the availability.

`report_run` reads a run's directory (`hakeeper.lab.nemesis_history`), checks its history
(`hakeeper.lab.nemesis_checks`), writes the HTML availability report of the run's own event
log beside it (the same code as ``hakeeper availability report --html``) and prints: faults
by kind with the client-observed outage per workload (median, p99, max), the availability of
every service and resource over the run, every invariant with its count and first examples,
and the elections each heal caused. ``as_json``: one JSON document instead. The exit status
is 0 only when every invariant counted 0 violations.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hakeeper.availability import measure, report_html
from hakeeper.cli.availability import load_report
from hakeeper.errors import ConfigError
from hakeeper.lab.nemesis_checks import Verdict, check_history
from hakeeper.lab.nemesis_history import EVENTS_FILE, HTML_FILE, read_run
from hakeeper.lab.nemesis_outages import FaultOutcome
from hakeeper.lab.nemesis_summary import KindSummary, by_kind
from hakeeper.model.availability_units import format_percent

console = Console()

#: Exit status when the run's directory cannot be read (1: read, and an invariant failed).
UNREADABLE = 2


def _finite(value: float | None) -> float | None:
    """JSON has no infinity: a fault never undone ends at null."""
    return None if value is None or math.isinf(value) else value


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def _availability(run_dir: Path) -> tuple[measure.Report | None, str]:
    """The event log's availability report, written as HTML beside it; or why not (a
    missing or broken event log must not hide the invariants' verdict)."""
    events = run_dir / EVENTS_FILE
    if not events.exists():
        return None, f"no event log at {events}: availability and the HTML report skipped"
    try:
        report = load_report(events, None, None, None, None, None)
    except ConfigError as exc:
        return None, f"{exc}: availability and the HTML report skipped"
    html = run_dir / HTML_FILE
    try:
        html.write_text(
            report_html.render(report, "hakeeper nemesis run: availability"), encoding="utf-8"
        )
    except OSError as exc:
        return report, f"{html}: cannot write ({exc.strerror}): HTML report skipped"
    return report, f"HTML availability report written to {html}"


def _fault_dict(outcome: FaultOutcome) -> dict[str, Any]:
    fault = outcome.fault
    return {
        "kind": fault.kind,
        "targets": list(fault.targets),
        "start": fault.start,
        "end": _finite(fault.end),
        "group": fault.group,
        "outages": dict(outcome.outages),
        "recovered_after": outcome.recovered_after,
        "elections": outcome.elections,
    }


def _kind_dict(summary: KindSummary) -> dict[str, Any]:
    return {
        "kind": summary.kind,
        "count": summary.count,
        "outages": {w: dataclasses.asdict(s) for w, s in summary.outages.items()},
        "elections": summary.elections,
    }


def as_document(verdict: Verdict, report: measure.Report | None, note: str) -> dict[str, Any]:
    return {
        "run": dataclasses.asdict(verdict.run),
        "ok": verdict.ok,
        "invariants": [dataclasses.asdict(i) for i in verdict.invariants],
        "faults_by_kind": [_kind_dict(s) for s in by_kind(verdict.faults)],
        "faults": [_fault_dict(o) for o in verdict.faults],
        "availability": None if report is None else report.to_dict(),
        "availability_note": note,
    }


def _faults_table(verdict: Verdict) -> Table:
    summaries = by_kind(verdict.faults)
    workloads = sorted({w for s in summaries for w in s.outages})
    table = Table(title="Faults by kind: client-observed outage", title_justify="left")
    table.add_column("fault")
    table.add_column("count", justify="right")
    for workload in workloads:
        table.add_column(escape(f"{workload} median / p99 / max"), justify="right")
    table.add_column("elections on heal", justify="right")
    for s in summaries:
        cells = []
        for workload in workloads:
            spread = s.outages.get(workload)
            cells.append(
                "—"
                if spread is None
                else f"{spread.median:.2f} / {spread.p99:.2f} / {spread.max:.2f} s"
            )
        table.add_row(escape(s.kind), str(s.count), *cells, str(s.elections))
    return table


def _availability_table(report: measure.Report) -> Table:
    table = Table(title="Availability over the run (event log)", title_justify="left")
    for column in ("what", "availability", "down", "failovers", "ran twice"):
        table.add_column(column, justify="left" if column == "what" else "right")
    rows = [
        *((f"service {s.name}", s) for s in report.services),
        *((f"resource {s.name}", s) for s in report.resources),
        ("quorum", report.quorum),
    ]
    for label, s in rows:
        twice = f"[red]{s.concurrent:.2f} s[/]" if s.concurrent > 0 else ""
        table.add_row(
            escape(label),
            "—" if s.availability is None else format_percent(s.availability),
            f"{s.downtime:.2f} s",
            str(len(s.failovers)),
            twice,
        )
    return table


def _invariants_table(verdict: Verdict) -> Table:
    table = Table(title="Invariants (every count must be 0)", title_justify="left")
    for column in ("invariant", "violations", "first examples"):
        table.add_column(column, justify="right" if column == "violations" else "left")
    for inv in verdict.invariants:
        count = str(inv.violations) if inv.ok else f"[red]{inv.violations}[/]"
        table.add_row(inv.name, count, escape("\n".join(inv.examples)))
    return table


def _heals_table(verdict: Verdict) -> Table:
    table = Table(title="Elections per heal", title_justify="left")
    for column in ("fault", "targets", "undone at", "recovered after", "elections"):
        table.add_column(column, justify="left" if column in ("fault", "targets") else "right")
    for o in verdict.faults:
        if math.isinf(o.fault.end):
            continue
        table.add_row(
            escape(o.fault.kind),
            escape(", ".join(o.fault.targets)),
            f"{o.fault.end:.3f}",
            _seconds(o.recovered_after),
            "—" if o.elections is None else str(o.elections),
        )
    return table


def _print(verdict: Verdict, report: measure.Report | None, note: str) -> None:
    run = verdict.run
    console.print(
        escape(
            f"nemesis run: seed {run.seed}, {run.duration:g} s of faults, profile "
            f"{run.profile}, nodes {', '.join(run.nodes)}, {len(verdict.faults)} fault(s)"
        )
    )
    console.print(_faults_table(verdict))
    if report is not None:
        console.print(_availability_table(report))
    console.print(escape(note))
    console.print(_invariants_table(verdict))
    console.print(_heals_table(verdict))
    failed = [i.name for i in verdict.invariants if not i.ok]
    if failed:
        console.print(f"[red]FAILED[/]: {', '.join(failed)}")
    else:
        console.print("[green]every invariant held[/]")


def report_run(run_dir: Path, *, as_json: bool) -> int:
    """Check the run in ``run_dir`` and print its report; 0 only when every invariant held,
    1 when one did not, `UNREADABLE` when the run could not be read."""
    try:
        verdict = check_history(read_run(run_dir))
    except (ConfigError, OSError) as exc:
        typer.echo(f"hakeeper lab nemesis-check: {exc}", err=True)
        return UNREADABLE
    report, note = _availability(run_dir)
    if as_json:
        typer.echo(json.dumps(as_document(verdict, report, note), indent=2, allow_nan=False))
    else:
        _print(verdict, report, note)
    return 0 if verdict.ok else 1


def nemesis_check(
    run_dir: Annotated[
        Path, typer.Argument(help="The run's directory (written by `hakeeper lab nemesis`).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Re-check a saved nemesis run and print its report (exit 0: every invariant held)."""
    raise typer.Exit(report_run(run_dir, as_json=as_json))
