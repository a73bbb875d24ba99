"""``GET /v1/availability``: each service's measured availability against its target.

The figures are those of ``hakeeper availability report`` (`hakeeper.availability.measure`),
counted over the cluster's own event log instead of an exported file, for the window that
ends now (``?window=30d`` by default, between `MIN_WINDOW` and `MAX_WINDOW`).

What is a service here: the cluster file has no services section, so every top-level
resource (a primitive outside any group and clone, a group, a clone) is one service, made of
the primitives it stands for. A primitive counts as up while its instance runs; a clone's
while at least one instance runs; a promotable clone's while an instance runs as primary.

Where the target comes from: the cluster file has no targets either (the CLI reads them from
a services file or ``--target``), so the caller names one with ``?target=99.95%`` — the
grammar of ``--target``. Without it the figures are measured and the budget is ``null``.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any, Literal, Protocol

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from hakeeper.availability import measure
from hakeeper.availability.services import ResourceRule, ServiceRule, Services
from hakeeper.availability.units import parse_availability
from hakeeper.errors import ConfigError
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.durations import DAY, parse_duration
from hakeeper.model.events import Event, FailoverFinished, FailoverStarted
from hakeeper.runtime.node_view import NodeView

#: The window when the caller names none, and its bounds (the log is trimmed anyway).
DEFAULT_WINDOW = "30d"
MIN_WINDOW = 60.0
MAX_WINDOW = 400 * DAY
#: Longest query value read: "99.95%" and "30d" are short, anything longer is a mistake.
MAX_QUERY_VALUE = 32
#: Spent share of the error budget from which a service is shown amber.
AT_RISK = 0.75
#: Deadline of the read of the event log.
READ_TIMEOUT = 15.0

#: The query parameters, for the OpenAPI document (`hakeeper.api.openapi`).
QUERY_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "window",
        "in": "query",
        "required": False,
        "description": "How far back from now to count, e.g. 30d, 12h (1 minute to 400 days).",
        "schema": {"type": "string", "maxLength": MAX_QUERY_VALUE, "default": DEFAULT_WINDOW},
    },
    {
        "name": "target",
        "in": "query",
        "required": False,
        "description": "The availability target, e.g. 99.95% or '4 nines' (as --target).",
        "schema": {"type": "string", "maxLength": MAX_QUERY_VALUE},
    },
]

#: ``met``: under `AT_RISK` of the budget spent; ``at_risk``: up to all of it; ``missed``:
#: more; ``no_target``: no target was given; ``not_observed``: it never ran in the window.
Verdict = Literal["met", "at_risk", "missed", "no_target", "not_observed"]
ServiceKind = Literal["primitive", "group", "clone"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FailoverSummary(_Frozen):
    """Failovers that finished in the window (durations in seconds)."""

    count: int
    mean: float | None
    max: float | None
    last: float | None  # when the latest one finished (Unix seconds)
    unfinished: int


class ServiceAvailability(_Frozen):
    name: str
    kind: ServiceKind
    resources: tuple[str, ...]
    availability: float | None  # up time / observed time; None: never observed
    target: float | None
    observed: float
    downtime: float
    outages: int
    longest_outage: float | None
    #: Downtime the target allows over the observed time, what is left of it, and the
    #: share spent (above 1: the target is missed). None without a target.
    budget: float | None
    budget_left: float | None
    budget_used: float | None
    verdict: Verdict
    up_now: bool | None
    failovers: FailoverSummary


class Window(_Frozen):
    start: float
    end: float
    length: float


class AvailabilityReport(_Frozen):
    window: Window
    target: float | None
    services: tuple[ServiceAvailability, ...]
    failovers: FailoverSummary
    #: The oldest event the log still holds: before it nothing is known.
    log_from: float | None


# --- what counts as a service ----------------------------------------------------------------


def services_of(spec: ClusterSpec) -> tuple[Services, dict[str, ServiceKind]]:
    """Every top-level resource of the cluster file as a service of its primitives."""
    rules: dict[str, ResourceRule] = {}
    services: dict[str, ServiceRule] = {}
    kinds: dict[str, ServiceKind] = {}
    groups = {g.id: g.members for g in spec.groups}
    for top in spec.top_level_ids():
        clone = next((c for c in spec.clones if c.id == top), None)
        if clone is not None:
            members = groups.get(clone.child, (clone.child,))
            for member in members:
                rules[member] = ResourceRule(member, role="primary" if clone.promotable else None)
            kinds[top] = "clone"
        else:
            members = groups.get(top, (top,))
            for member in members:
                primitive = spec.primitive(member)
                exclusive = primitive is not None and primitive.meta.exclusive
                rules[member] = ResourceRule(member, exclusive=exclusive)
            kinds[top] = "group" if top in groups else "primitive"
        services[top] = ServiceRule(top, tuple(members))
    return Services(rules, services), kinds


# --- the query --------------------------------------------------------------------------------


def parse_window(text: str | None) -> float:
    value = text if text is not None else DEFAULT_WINDOW
    if len(value) > MAX_QUERY_VALUE:
        raise ConfigError(f"window: at most {MAX_QUERY_VALUE} characters; write e.g. 30d")
    seconds = parse_duration(value, what="window", unit_required=True)
    if not MIN_WINDOW <= seconds <= MAX_WINDOW:
        raise ConfigError(f"window: {value!r} is outside 1m to 400d; write e.g. 30d or 12h")
    return seconds


def parse_target(text: str | None) -> float | None:
    if text is None:
        return None
    if len(text) > MAX_QUERY_VALUE:
        raise ConfigError(f"target: at most {MAX_QUERY_VALUE} characters; write e.g. 99.95%")
    try:
        value = parse_availability(text, "target")
    except (ArithmeticError, ValueError) as exc:  # "-400 nines" overflows a float
        raise ConfigError(f"target: cannot read {text!r}; write e.g. 99.95%") from exc
    if not (math.isfinite(value) and 0 < value <= 1):
        raise ConfigError(f"target: {text!r} is not above 0 and at most 100 %; write e.g. 99.95%")
    return round(value, 12)  # 99.9 / 100 is 0.9990000000000001 in binary; say 0.999


# --- the figures ------------------------------------------------------------------------------


def _failovers(events: list[Event], resources: set[str] | None) -> FailoverSummary:
    def counted(resource: str) -> bool:
        return resources is None or resource in resources

    done = [e for e in events if isinstance(e, FailoverFinished) and counted(e.resource)]
    started = sum(1 for e in events if isinstance(e, FailoverStarted) and counted(e.resource))
    durations = [e.duration for e in done]
    return FailoverSummary(
        count=len(done),
        mean=sum(durations) / len(durations) if durations else None,
        max=max(durations, default=None),
        last=max((e.ts for e in done), default=None),
        unfinished=max(0, started - len(done)),
    )


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def _verdict(stats: measure.Stats) -> Verdict:
    used = stats.budget_used
    if stats.observed <= 0:
        return "not_observed"
    if used is None:
        return "no_target"
    if used > 1:
        return "missed"
    return "at_risk" if used >= AT_RISK else "met"


def _service(
    stats: measure.Stats,
    rule: ServiceRule,
    kind: ServiceKind,
    inside: list[Event],
    up_now: bool | None,
) -> ServiceAvailability:
    budget = stats.budget
    longest = stats.longest
    return ServiceAvailability(
        name=rule.name,
        kind=kind,
        resources=rule.resources,
        availability=stats.availability,
        target=stats.target,
        observed=stats.observed,
        downtime=stats.downtime,
        outages=len(stats.outages),
        longest_outage=None if longest is None else longest.duration,
        budget=budget,
        budget_left=None if budget is None else budget - stats.downtime,
        budget_used=_finite(stats.budget_used),
        verdict=_verdict(stats),
        up_now=up_now,
        failovers=_failovers(inside, set(rule.resources)),
    )


def summarize(
    events: list[Event], spec: ClusterSpec, now: float, window: float, target: float | None
) -> AvailabilityReport:
    """Each service's figures over ``[now - window, now]`` from ``events`` (the event log)."""
    services, kinds = services_of(spec)
    start = now - window
    inside = [e for e in events if start <= e.ts <= now]
    known = [e for e in events if e.ts <= now]
    report = measure.measure(known, services, start, now, target) if known else None
    measured = {s.name: s for s in report.services} if report else {}
    lines = report.timelines if report else {}
    rows = []
    for rule in services.services.values():
        timeline = lines.get(f"service:{rule.name}", measure.Timeline())
        stats = measured.get(rule.name) or measure.stats_of(
            "service", rule.name, timeline, start, now, target
        )
        up_now = timeline.changes[-1][1] if timeline.changes else None
        rows.append(_service(stats, rule, kinds[rule.name], inside, up_now))
    return AvailabilityReport(
        window=Window(start=start, end=now, length=window),
        target=target,
        services=tuple(rows),
        failovers=_failovers(inside, None),
        log_from=min((e.ts for e in events), default=None),
    )


class _HasView(Protocol):
    @property
    def view(self) -> NodeView: ...


async def _compute(view: NodeView, window: float, target: float | None) -> AvailabilityReport:
    async with asyncio.timeout(READ_TIMEOUT):
        events = await view.store.event_log(view.node).read()
    # Replaying a long log takes CPU (about 6 ms per thousand events): in a thread, so the
    # node's loop keeps renewing its lease meanwhile.
    return await asyncio.to_thread(summarize, events, view.spec(), time.time(), window, target)


#: The computations running now, per node view and query. Every open dashboard refetches on
#: the same failover, the moment lease renewals matter most: they share one computation.
_running: dict[tuple[int, float, float | None], asyncio.Future[AvailabilityReport]] = {}


async def shared(view: NodeView, window: float, target: float | None) -> AvailabilityReport:
    """The figures, computed once for all the requests that ask while it runs."""
    key = (id(view), window, target)
    while (running := _running.get(key)) is not None:
        try:
            return await asyncio.shield(running)
        except asyncio.CancelledError:
            if not running.cancelled():
                raise  # this request was cancelled, not the one computing
    future: asyncio.Future[AvailabilityReport] = asyncio.get_running_loop().create_future()
    _running[key] = future
    try:
        found = await _compute(view, window, target)
    except asyncio.CancelledError:
        future.cancel()  # a waiter computes anew
        raise
    except Exception as exc:
        future.set_exception(exc)
        future.exception()  # its waiters see it; no "never retrieved" warning without them
        raise
    finally:
        del _running[key]
    future.set_result(found)
    return found


async def availability(ctx: _HasView, request: web.Request, _: None) -> web.StreamResponse:
    window = parse_window(request.query.get("window"))
    target = parse_target(request.query.get("target"))
    found = await shared(ctx.view, window, target)
    return web.json_response(found.model_dump(mode="json"))
