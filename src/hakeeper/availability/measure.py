"""Measured availability: the event log replayed into up/down timelines, then counted.

Replay (`timelines`): events are applied in time order, all events with the same ``ts``
together (a promotion is a stop and a start at one instant, which is no outage). After each
instant the state of every entity is sampled:

- a **node** is up from ``node.joined`` until ``node.lost`` or ``node.fenced``;
- an **instance** (resource on a node) runs from ``resource.started`` until
  ``resource.stopped``/``resource.failed`` there, or until its node is lost or fenced;
- a **resource** is up while at least ``required`` of its instances in the counted role run
  (an exclusive resource: while its one instance runs; time with more than one is reported
  as ``concurrent``, which should always be zero);
- a **service** is up while all of its resources are up;
- **quorum** is held except between ``quorum.lost`` and ``quorum.regained``.

Observation of an entity starts the first time it is up — before that it was not deployed,
and a cluster's own start-up is not an outage. Figures over a window (`measure`):

- ``failures``: up→down transitions inside the window; ``repairs``: down→up ones;
- observed ``MTBF = up time / failures``, ``MTTR = down time / outages``, where outages
  still open at either edge of the window are cut at that edge;
- ``availability = up time / observed time``; the longest outage;
- error budget: ``(1 − target) × observed time`` against the down time;
- failovers: ``failover.finished`` events (count and their measured durations);
  ``failover.started`` without a finish is reported as unfinished.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from itertools import groupby
from typing import Any

from hakeeper.availability.services import Services
from hakeeper.errors import ConfigError
from hakeeper.model.events import (
    ControllerElected,
    DrillFinished,
    Event,
    FailoverFinished,
    FailoverStarted,
    NodeFenced,
    NodeJoined,
    NodeLost,
    QuorumLost,
    QuorumRegained,
    ResourceFailed,
    ResourceStarted,
    ResourceStopped,
    sort_events,
)


@dataclass(frozen=True, slots=True)
class Timeline:
    """A two-state step function: ``changes[i] = (ts, up)`` holds from ts to the next change.

    Before the first change the entity is not observed. Consecutive changes never repeat a
    state.
    """

    changes: tuple[tuple[float, bool], ...] = ()

    def segments(self, start: float, end: float) -> list[tuple[float, float, bool]]:
        """The observed ``(from, to, up)`` pieces inside ``[start, end]``."""
        out = []
        for index, (ts, up) in enumerate(self.changes):
            following = self.changes[index + 1][0] if index + 1 < len(self.changes) else end
            lo, hi = max(ts, start), min(following, end)
            if hi > lo:
                out.append((lo, hi, up))
        return out


@dataclass(frozen=True, slots=True)
class Outage:
    start: float
    end: float
    open_start: bool = False  # began before the window
    open_end: bool = False  # still down at the end of the window

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Stats:
    """Measured figures of one node, resource or service over the window."""

    kind: str  # "node" | "resource" | "service" | "quorum"
    name: str
    observed: float
    uptime: float
    outages: tuple[Outage, ...]
    failures: int
    repairs: int
    observed_from: float | None = None
    target: float | None = None
    instance_failures: int = 0
    failovers: tuple[float, ...] = ()
    unfinished_failovers: int = 0
    concurrent: float = 0.0

    @property
    def downtime(self) -> float:
        return self.observed - self.uptime

    @property
    def availability(self) -> float | None:
        return None if self.observed <= 0 else self.uptime / self.observed

    @property
    def mtbf(self) -> float | None:
        return None if self.failures == 0 else self.uptime / self.failures

    @property
    def mttr(self) -> float | None:
        return None if not self.outages else self.downtime / len(self.outages)

    @property
    def longest(self) -> Outage | None:
        return max(self.outages, key=lambda o: o.duration, default=None)

    @property
    def budget(self) -> float | None:
        """Downtime the target allows over the observed time (seconds)."""
        return None if self.target is None else (1 - self.target) * self.observed

    @property
    def budget_used(self) -> float | None:
        """Fraction of the error budget spent (above 1: the SLA is missed)."""
        budget = self.budget
        if budget is None:
            return None
        if budget == 0:
            return math.inf if self.downtime > 0 else 0.0
        return self.downtime / budget

    def to_dict(self) -> dict[str, Any]:
        longest = self.longest
        return {
            "kind": self.kind,
            "name": self.name,
            "observed_from": self.observed_from,
            "observed": self.observed,
            "uptime": self.uptime,
            "downtime": self.downtime,
            "availability": self.availability,
            "failures": self.failures,
            "repairs": self.repairs,
            "mtbf": self.mtbf,
            "mttr": self.mttr,
            "longest_outage": None
            if longest is None
            else {"start": longest.start, "duration": longest.duration},
            "outages": [
                {"start": o.start, "end": o.end, "open_start": o.open_start, "open_end": o.open_end}
                for o in self.outages
            ],
            "target": self.target,
            "budget": self.budget,
            "budget_used": _finite_or_none(self.budget_used),
            "instance_failures": self.instance_failures,
            "failovers": {
                "count": len(self.failovers),
                "durations": list(self.failovers),
                "mean": sum(self.failovers) / len(self.failovers) if self.failovers else None,
                "max": max(self.failovers, default=None),
                "unfinished": self.unfinished_failovers,
            },
            "concurrent": self.concurrent,
        }


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or math.isinf(value) else value


@dataclass(frozen=True, slots=True)
class Report:
    start: float
    end: float
    nodes: tuple[Stats, ...]
    resources: tuple[Stats, ...]
    services: tuple[Stats, ...]
    quorum: Stats
    controller_elections: int
    fencings: tuple[float, ...]
    failed_fencings: int
    timelines: dict[str, Timeline] = field(default_factory=dict)
    #: Restore drills in the window, oldest first: each one's measured RTO and RPO.
    drills: tuple[DrillFinished, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": {"start": self.start, "end": self.end, "length": self.end - self.start},
            "services": [s.to_dict() for s in self.services],
            "resources": [s.to_dict() for s in self.resources],
            "nodes": [s.to_dict() for s in self.nodes],
            "quorum": self.quorum.to_dict(),
            "controller_elections": self.controller_elections,
            "fencing": {
                "count": len(self.fencings),
                "failed": self.failed_fencings,
                "durations": list(self.fencings),
            },
            "drills": [
                {
                    "ts": d.ts,
                    "backup_id": d.backup_id,
                    "ok": d.ok,
                    "rto": d.rto,
                    "rpo": d.rpo,
                    "reason": d.reason,
                }
                for d in self.drills
            ],
        }


@dataclass(slots=True)
class _Replay:
    """Mutable state while replaying; only `timelines` leaves this module."""

    services: Services
    nodes_up: set[str] = field(default_factory=set)
    running: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    quorum: bool = True
    changes: dict[str, list[tuple[float, bool]]] = field(default_factory=dict)
    concurrent_since: dict[str, float] = field(default_factory=dict)
    concurrent: dict[str, list[tuple[float, float]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    names: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def apply(self, event: Event) -> None:
        match event:
            case NodeJoined(node=node):
                self.nodes_up.add(node)
                self._know("node", node)
            case NodeLost(node=node) | NodeFenced(node=node):
                self.nodes_up.discard(node)
                self._know("node", node)
                for instances in self.running.values():
                    instances.pop(node, None)
            case ResourceStarted(resource=resource, node=node, role=role):
                self.running[resource][node] = role
                self._know("resource", resource)
            case (
                ResourceStopped(resource=resource, node=node)
                | ResourceFailed(resource=resource, node=node)
            ):
                self.running[resource].pop(node, None)
                self._know("resource", resource)
            case QuorumLost():
                self.quorum = False
            case QuorumRegained():
                self.quorum = True
            case _:
                pass

    def _know(self, kind: str, name: str) -> None:
        if name not in self.names[kind]:
            self.names[kind].append(name)

    def sample(self, ts: float) -> None:
        for node in self.names["node"]:
            self._record(f"node:{node}", ts, node in self.nodes_up)
        resource_up: dict[str, bool] = {}
        for resource in [*self.names["resource"], *self._service_resources()]:
            rule = self.services.rule(resource)
            count = sum(
                1
                for role in self.running.get(resource, {}).values()
                if rule.role is None or role == rule.role
            )
            resource_up[resource] = count >= rule.required
            if resource in self.names["resource"]:
                self._record(f"resource:{resource}", ts, resource_up[resource])
            self._track_concurrent(resource, ts, rule.exclusive and count > 1)
        for service in self.services.services.values():
            up = all(resource_up.get(r, False) for r in service.resources)
            self._record(f"service:{service.name}", ts, up)
        self._record("quorum:cluster", ts, self.quorum)

    def _service_resources(self) -> list[str]:
        seen = set(self.names["resource"])
        out = []
        for service in self.services.services.values():
            for resource in service.resources:
                if resource not in seen:
                    seen.add(resource)
                    out.append(resource)
        return out

    def _record(self, key: str, ts: float, up: bool) -> None:
        changes = self.changes.setdefault(key, [])
        # Observation starts at the first "up": before that the thing was not deployed yet.
        if (not changes and up) or (changes and changes[-1][1] != up):
            changes.append((ts, up))

    def _track_concurrent(self, resource: str, ts: float, now: bool) -> None:
        since = self.concurrent_since.get(resource)
        if now and since is None:
            self.concurrent_since[resource] = ts
        elif not now and since is not None:
            self.concurrent[resource].append((since, ts))
            del self.concurrent_since[resource]


def _replay(events: Sequence[Event], services: Services, end: float) -> _Replay:
    replay = _Replay(services)
    for ts, batch in groupby(events, key=lambda event: event.ts):
        for event in batch:
            replay.apply(event)
        replay.sample(ts)
    for resource, since in list(replay.concurrent_since.items()):
        replay.concurrent[resource].append((since, end))
    return replay


def timelines(events: Iterable[Event], services: Services | None = None) -> dict[str, Timeline]:
    """Every entity's up/down timeline, keyed ``"node:<n>"``, ``"resource:<r>"``,
    ``"service:<s>"`` and ``"quorum:cluster"``."""
    ordered = sort_events(events)
    end = ordered[-1].ts if ordered else 0.0
    replay = _replay(ordered, services or Services(), end)
    return {key: Timeline(tuple(changes)) for key, changes in replay.changes.items()}


def stats_of(
    kind: str, name: str, timeline: Timeline, start: float, end: float, target: float | None
) -> Stats:
    """Count one timeline over ``[start, end]``."""
    segments = timeline.segments(start, end)
    observed = sum(hi - lo for lo, hi, _ in segments)
    uptime = sum(hi - lo for lo, hi, up in segments if up)
    outages = [
        Outage(lo, hi, open_start=lo == start and lo > timeline.changes[0][0], open_end=hi == end)
        for lo, hi, up in segments
        if not up
    ]
    changes_inside = [up for ts, up in timeline.changes[1:] if start < ts <= end]
    return Stats(
        kind=kind,
        name=name,
        observed=observed,
        uptime=uptime,
        outages=tuple(outages),
        failures=sum(1 for up in changes_inside if not up),
        repairs=sum(1 for up in changes_inside if up),
        observed_from=segments[0][0] if segments else None,
        target=target,
    )


def measure(
    events: Iterable[Event],
    services: Services | None = None,
    start: float | None = None,
    end: float | None = None,
    target: float | None = None,
) -> Report:
    """The measured report over ``[start, end]`` (default: first to last event).

    `target` is the SLA target for services without their own and for resources; the
    services file's ``target`` comes first. Nodes and the quorum get no target.
    """
    services = services or Services()
    ordered = sort_events(events)
    if not ordered:
        raise ConfigError("the event log is empty: nothing to measure")
    lo = ordered[0].ts if start is None else start
    hi = ordered[-1].ts if end is None else end
    if hi <= lo:
        raise ConfigError(f"the window is empty (start {lo} is not before end {hi})")
    replay = _replay(ordered, services, hi)
    lines = {key: Timeline(tuple(changes)) for key, changes in replay.changes.items()}
    default_target = services.target if services.target is not None else target
    inside = [event for event in ordered if lo <= event.ts <= hi]

    def stats(kind: str, name: str, own_target: float | None = None) -> Stats:
        timeline = lines.get(f"{kind}:{name}", Timeline())
        chosen = own_target if own_target is not None else default_target
        return stats_of(kind, name, timeline, lo, hi, chosen)

    # Nodes and quorum get no target: an SLA is promised for services (and the resources
    # they are made of), and a node's own budget would flag every routine repair.
    nodes = tuple(
        stats_of("node", node, lines.get(f"node:{node}", Timeline()), lo, hi, None)
        for node in replay.names["node"]
    )
    resources = []
    for resource in replay.names["resource"]:
        base = stats("resource", resource)
        finished = [
            e.duration for e in inside if isinstance(e, FailoverFinished) and e.resource == resource
        ]
        started = sum(
            1 for e in inside if isinstance(e, FailoverStarted) and e.resource == resource
        )
        failed = sum(1 for e in inside if isinstance(e, ResourceFailed) and e.resource == resource)
        overlap = sum(
            max(0.0, min(b, hi) - max(a, lo)) for a, b in replay.concurrent.get(resource, [])
        )
        resources.append(
            replace(
                base,
                failovers=tuple(finished),
                unfinished_failovers=max(0, started - len(finished)),
                instance_failures=failed,
                concurrent=overlap,
            )
        )
    service_stats = tuple(
        stats("service", rule.name, rule.target) for rule in services.services.values()
    )
    quorum = stats_of("quorum", "cluster", lines.get("quorum:cluster", Timeline()), lo, hi, None)
    fenced = [e for e in inside if isinstance(e, NodeFenced)]
    return Report(
        start=lo,
        end=hi,
        nodes=nodes,
        resources=tuple(resources),
        services=service_stats,
        quorum=quorum,
        controller_elections=sum(1 for e in inside if isinstance(e, ControllerElected)),
        fencings=tuple(e.duration for e in fenced if e.ok),
        failed_fencings=sum(1 for e in fenced if not e.ok),
        timelines=lines,
        drills=tuple(e for e in inside if isinstance(e, DrillFinished)),
    )
