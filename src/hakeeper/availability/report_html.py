"""The measured report as one self-contained HTML file with inline SVG plots.

No JavaScript, no fonts or styles from the network: the file can be mailed or archived and
opens the same in ten years. Hover titles (SVG ``<title>``) give exact figures.

Plots:
- outage timeline: one row per service, resource, node and the quorum; up time green, each
  outage red (drawn at least 2 px wide so a 3 s outage in 30 days is still visible),
  unobserved time grey;
- availability against target, on a nines scale (−log10(1 − A)): on a linear scale 99.9 %
  and 99.99 % look the same, and that difference is the whole point;
- error budget burn: cumulative downtime of each service over the window against its budget.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from html import escape

from hakeeper.availability.measure import Report, Stats, Timeline
from hakeeper.model.availability_units import format_duration, format_percent
from hakeeper.model.durations import DAY, HOUR

GREEN, RED, GREY, BLUE, AMBER = "#3a9d5d", "#d64541", "#d5d8dc", "#2e6fb5", "#e49b0f"
LABEL_WIDTH, PLOT_WIDTH, ROW = 170, 760, 22


def _time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _optional_duration(value: float | None) -> str:
    return "—" if value is None else format_duration(value)


def _percent(value: float | None) -> str:
    return "—" if value is None else format_percent(value)


def _budget(stats: Stats) -> str:
    used = stats.budget_used
    if used is None:
        return "—"
    return "∞" if math.isinf(used) else f"{used * 100:.1f}%"


def _rows(report: Report) -> list[tuple[str, Stats]]:
    return [
        *((f"service {s.name}", s) for s in report.services),
        *((f"resource {s.name}", s) for s in report.resources),
        *((f"node {s.name}", s) for s in report.nodes),
        ("quorum", report.quorum),
    ]


def _ticks(start: float, end: float) -> list[float]:
    """Tick positions at whole days (or hours for short windows), at most about 10."""
    span = end - start
    step = DAY if span > 2 * DAY else HOUR
    while span / step > 10:
        step *= 2
    first = math.ceil(start / step) * step
    return [first + i * step for i in range(int((end - first) // step) + 1)]


def timeline_svg(report: Report) -> str:
    rows = _rows(report)
    height = 30 + ROW * len(rows)
    span = report.end - report.start

    def x(ts: float) -> float:
        return LABEL_WIDTH + (ts - report.start) / span * PLOT_WIDTH

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{LABEL_WIDTH + PLOT_WIDTH + 20}" '
        f'height="{height}" role="img" aria-label="outage timeline">'
    ]
    for tick in _ticks(report.start, report.end):
        label = datetime.fromtimestamp(tick, UTC).strftime("%m-%d" if span > 2 * DAY else "%H:%M")
        parts.append(
            f'<line x1="{x(tick):.1f}" y1="4" x2="{x(tick):.1f}" y2="{height - 18}" '
            f'stroke="#eee"/><text x="{x(tick):.1f}" y="{height - 4}" font-size="10" '
            f'text-anchor="middle" fill="#555">{label}</text>'
        )
    for index, (label, stats) in enumerate(rows):
        y = 6 + index * ROW
        key = f"{stats.kind}:{stats.name}"
        timeline = report.timelines.get(key, Timeline())
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 13}" font-size="12" text-anchor="end">'
            f"{escape(label)}</text>"
            f'<rect x="{LABEL_WIDTH}" y="{y}" width="{PLOT_WIDTH}" height="16" fill="{GREY}">'
            "<title>not observed</title></rect>"
        )
        for lo, hi, up in timeline.segments(report.start, report.end):
            if up:
                parts.append(
                    f'<rect x="{x(lo):.2f}" y="{y}" width="{x(hi) - x(lo):.2f}" height="16" '
                    f'fill="{GREEN}"/>'
                )
        for outage in stats.outages:
            width = max(2.0, x(outage.end) - x(outage.start))
            title = f"{label}: down {format_duration(outage.duration)} from {_time(outage.start)}"
            parts.append(
                f'<rect x="{x(outage.start):.2f}" y="{y - 1}" width="{width:.2f}" height="18" '
                f'fill="{RED}"><title>{escape(title)}</title></rect>'
            )
    parts.append("</svg>")
    return "".join(parts)


def nines_svg(report: Report) -> str:
    """Horizontal bars of nines with each row's target as a tick."""
    rows = [(label, s) for label, s in _rows(report) if s.availability is not None]
    cap = 7.0  # 99.99999 %: anything better (or perfect) is drawn at the cap
    height = 34 + ROW * len(rows)

    def x(nines: float) -> float:
        return LABEL_WIDTH + min(nines, cap) / cap * PLOT_WIDTH

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{LABEL_WIDTH + PLOT_WIDTH + 90}" '
        f'height="{height}" role="img" aria-label="availability against target">'
    ]
    for nines in range(int(cap) + 1):
        parts.append(
            f'<line x1="{x(nines):.1f}" y1="4" x2="{x(nines):.1f}" y2="{height - 20}" '
            f'stroke="#eee"/><text x="{x(nines):.1f}" y="{height - 6}" font-size="10" '
            f'text-anchor="middle" fill="#555">{format_percent(1 - 10**-nines)}</text>'
        )
    for index, (label, stats) in enumerate(rows):
        a = stats.availability or 0.0
        value = cap if a >= 1 else -math.log10(1 - a)
        y = 6 + index * ROW
        met = stats.target is None or a >= stats.target
        colour = BLUE if stats.target is None else (GREEN if met else RED)
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 13}" font-size="12" text-anchor="end">'
            f"{escape(label)}</text>"
            f'<rect x="{LABEL_WIDTH}" y="{y}" width="{x(value) - LABEL_WIDTH:.2f}" height="16" '
            f'fill="{colour}"><title>{escape(label)}: {_percent(a)}</title></rect>'
            f'<text x="{x(value) + 4:.1f}" y="{y + 13}" font-size="11">{_percent(a)}</text>'
        )
        if stats.target is not None:
            tx = x(-math.log10(1 - stats.target)) if stats.target < 1 else x(cap)
            parts.append(
                f'<line x1="{tx:.1f}" y1="{y - 3}" x2="{tx:.1f}" y2="{y + 19}" stroke="#111" '
                f'stroke-width="2"><title>target {_percent(stats.target)}</title></line>'
            )
    parts.append("</svg>")
    return "".join(parts)


def budget_svg(report: Report) -> str:
    """Cumulative service downtime over the window, with each service's budget line."""
    services = [s for s in report.services if s.budget is not None]
    if not services:
        return "<p>No service has a target, so there is no budget to burn.</p>"
    width, height, left, bottom = PLOT_WIDTH, 220, 70, 24
    top_value = max(max(s.downtime for s in services), max(s.budget or 0 for s in services))
    top_value = top_value * 1.1 or 1.0
    span = report.end - report.start

    def x(ts: float) -> float:
        return left + (ts - report.start) / span * width

    def y(seconds: float) -> float:
        return 8 + (1 - seconds / top_value) * (height - bottom - 8)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 150}" height="{height}" '
        'role="img" aria-label="error budget burn">'
    ]
    for fraction in (0, 0.25, 0.5, 0.75, 1.0):
        value = top_value * fraction
        parts.append(
            f'<line x1="{left}" y1="{y(value):.1f}" x2="{left + width}" y2="{y(value):.1f}" '
            f'stroke="#eee"/><text x="{left - 6}" y="{y(value) + 4:.1f}" font-size="10" '
            f'text-anchor="end" fill="#555">{escape(format_duration(value, 2))}</text>'
        )
    for tick in _ticks(report.start, report.end):
        label = datetime.fromtimestamp(tick, UTC).strftime("%m-%d" if span > 2 * DAY else "%H:%M")
        parts.append(
            f'<text x="{x(tick):.1f}" y="{height - 6}" font-size="10" text-anchor="middle" '
            f'fill="#555">{label}</text>'
        )
    palette = [BLUE, AMBER, "#8e44ad", "#16a085"]
    for index, stats in enumerate(services):
        colour = palette[index % len(palette)]
        points = [(report.start, 0.0)]
        spent = 0.0
        for outage in stats.outages:
            points += [(outage.start, spent), (outage.end, spent + outage.duration)]
            spent += outage.duration
        points.append((report.end, spent))
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
        budget = stats.budget or 0.0
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
            f'<line x1="{left}" y1="{y(budget):.1f}" x2="{left + width}" y2="{y(budget):.1f}" '
            f'stroke="{colour}" stroke-dasharray="6 4"/>'
            f'<text x="{left + width + 6}" y="{y(budget) + 4:.1f}" font-size="11" '
            f'fill="{colour}">{escape(stats.name)} budget</text>'
            f'<text x="{left + width + 6}" y="{y(spent) + 4:.1f}" font-size="11" '
            f'fill="{colour}">{escape(stats.name)} spent</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(report: Report) -> str:
    head = (
        "<tr><th>what</th><th>availability</th><th>target</th><th>down</th><th>failures</th>"
        "<th>MTBF</th><th>MTTR</th><th>longest outage</th><th>failovers</th>"
        "<th>budget used</th></tr>"
    )
    body = []
    for label, s in _rows(report):
        longest = s.longest
        failovers = (
            f"{len(s.failovers)} (max {format_duration(max(s.failovers))})" if s.failovers else "0"
        )
        used = s.budget_used
        over = used is not None and used > 1
        body.append(
            f"<tr><td>{escape(label)}</td><td>{_percent(s.availability)}</td>"
            f"<td>{_percent(s.target)}</td><td>{format_duration(s.downtime)}</td>"
            f"<td>{s.failures}</td><td>{_optional_duration(s.mtbf)}</td>"
            f"<td>{_optional_duration(s.mttr)}</td>"
            f"<td>{_optional_duration(longest.duration if longest else None)}</td>"
            f"<td>{failovers}</td>"
            f'<td class="{"over" if over else ""}">{_budget(s)}</td></tr>'
        )
    return f"<table>{head}{''.join(body)}</table>"


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 16px; margin-top: 28px; }
.meta { color: #555; font-size: 13px; }
.cards { display: flex; gap: 16px; margin: 16px 0; flex-wrap: wrap; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 10px 16px; min-width: 200px; }
.card .big { font-size: 26px; font-weight: 600; }
.card.ok .big { color: #2d7d4a; } .card.miss .big { color: #c0392b; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid #e5e5e5; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.over { color: #c0392b; font-weight: 600; }
.legend span { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px;
  vertical-align: middle; }
"""


def _outage_list(report: Report) -> str:
    """Every service and resource outage, longest first: what to write a post-mortem about."""
    rows = [
        (label, outage)
        for label, stats in _rows(report)
        if stats.kind in ("service", "resource")
        for outage in stats.outages
    ]
    if not rows:
        return "<p>No service or resource outage in the window.</p>"
    rows.sort(key=lambda row: -row[1].duration)
    body = "".join(
        f"<tr><td>{escape(label)}</td><td>{_time(o.start)}</td>"
        f"<td>{format_duration(o.duration)}</td>"
        f"<td>{'still down at window end' if o.open_end else ''}</td></tr>"
        for label, o in rows
    )
    return f"<table><tr><th>what</th><th>from</th><th>duration</th><th></th></tr>{body}</table>"


def _cards(report: Report) -> str:
    cards = []
    for s in report.services:
        a = s.availability
        ok = a is not None and (s.target is None or a >= s.target)
        cards.append(
            f'<div class="card {"ok" if ok else "miss"}"><div>service '
            f"<b>{escape(s.name)}</b></div><div class='big'>{_percent(a)}</div>"
            f"<div>target {_percent(s.target)} · budget used {_budget(s)}</div>"
            f"<div>down {format_duration(s.downtime)} in {s.failures} outage(s)</div></div>"
        )
    return f'<div class="cards">{"".join(cards)}</div>'


def render(report: Report, title: str = "hakeeper availability report") -> str:
    """The whole HTML document."""
    fencing = (
        f"{len(report.fencings)} fencing(s), mean "
        f"{format_duration(sum(report.fencings) / len(report.fencings))}"
        if report.fencings
        else "no fencing"
    )
    failed = f" · {report.failed_fencings} failed" if report.failed_fencings else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{STYLE}</style></head><body>
<h1>{escape(title)}</h1>
<div class="meta">window {_time(report.start)} → {_time(report.end)}
({format_duration(report.end - report.start)}) · {report.controller_elections} controller
election(s) · {fencing}{failed}</div>
{_cards(report)}
<h2>Outage timeline</h2>
<div class="legend"><span style="background:{GREEN}"></span>up<span style="background:{RED}">
</span>down<span style="background:{GREY}"></span>not observed (before first start)</div>
{timeline_svg(report)}
<h2>Availability against target (nines scale; black tick = target)</h2>
{nines_svg(report)}
<h2>Error budget burn</h2>
{budget_svg(report)}
<h2>Figures</h2>
{_table(report)}
<h2>Outages, longest first</h2>
{_outage_list(report)}
<p class="meta">Observed MTBF = up time / failures; MTTR = down time / outages; outages open at
the window's edges are cut there. Generated by hakeeper availability report.</p>
</body></html>
"""
