"""``GET /metrics``: the cluster and this node's loops in Prometheus' text format.

Two sources, one page (the table of names is docs/metrics.md):

- **the cluster**, read from the engine at scrape time (`read_cluster`): quorum, the
  controller, nodes by state, instances by role, fail counts, the age of the newest backup.
  Every node serves the same cluster view, as ha_cluster_exporter does on every Pacemaker
  node; rule 6 holds because it is read from the cluster, never from this node's opinion.
- **this process** (`hakeeper.runtime.observations.Observations`): lease renewal latency,
  scheduler run time, fences and failovers this node's controller carried out. These are
  counters of the process: sum them over the nodes for the cluster's total.
- **the balancers and session stores running on this node**, asked at scrape time
  (`hakeeper.api.metrics_components`).

Names follow Prometheus' conventions and ha_cluster_exporter's style: a ``hakeeper_`` prefix,
base units (seconds), ``_total`` counters, states and roles as label values (every state is
always present, zero or not, so a query never meets a missing series), one line per entity
with the value 1 where the entity is the point (``hakeeper_node_state``).

A scrape reads the engine at most once per `MIN_READ_INTERVAL` (a reading is shared by the
scrapes in that window; the event log, for the backup age, once per `BACKUP_READ_INTERVAL`)
and within `READ_TIMEOUT`, so a flood of scrapes cannot become a flood
of reads through the consensus log; an engine that does not answer gives ``hakeeper_up 0``
and the process's own families, never a hung scrape.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from hakeeper.api.metrics_components import local_components, scrape_components
from hakeeper.errors import ConfigError, CoordError
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.roles import INSTANCE_ROLES
from hakeeper.model.state import NODE_STATUSES, ClusterState, NodeState
from hakeeper.runtime.election import Controller
from hakeeper.runtime.observations import Histogram, Observations
from hakeeper.runtime.store import ClusterStore

log = logging.getLogger(__name__)

P = "hakeeper_"
#: The event kind a finished backup writes (model/events.py spells kinds ``area.what``).
BACKUP_CREATED = "backup.created"
#: A node is in exactly one of these: the status report's words (`status --json`).
NODE_STATES = (*NODE_STATUSES, "fenced")
READ_TIMEOUT = 5.0
MIN_READ_INTERVAL = 1.0
#: The backup age needs the whole event log parsed (up to its 20,000 kept events) on the
#: daemon's event loop: once a minute is plenty for an age counted in hours.
BACKUP_READ_INTERVAL = 60.0


@dataclass(frozen=True, slots=True)
class ClusterReading:
    """What one read of the engine found; ``state`` is None when nothing could be read."""

    cluster: str
    node: str  # the node serving the scrape
    up: bool  # the engine answered in time
    quorum: bool = False
    controller: Controller | None = None
    state: ClusterState | None = None
    last_backup: float | None = None  # Unix seconds of the newest backup.created kept
    now: float = 0.0


async def read_cluster(
    store: ClusterStore,
    spec: ClusterSpec,
    node: str,
    now: float,
    timeout: float = READ_TIMEOUT,
    *,
    with_backup: bool = True,
) -> ClusterReading:
    """Quorum, controller, one snapshot and (``with_backup``) the newest backup event,
    within ``timeout``."""
    name = spec.options.name
    try:
        async with asyncio.timeout(timeout):
            if not await store.has_quorum():
                # Reads go through the consensus log: without a majority none is answered.
                return ClusterReading(name, node, up=True, now=now)
            controller = await store.controller()
            observed = await store.observe(spec, now)
            last_backup = await _last_backup(store, node) if with_backup else None
    except (CoordError, TimeoutError) as exc:
        log.warning("event=metrics_read_failed error=%r", str(exc) or type(exc).__name__)
        return ClusterReading(name, node, up=False, now=now)
    return ClusterReading(name, node, True, True, controller, observed.state, last_backup, now)


async def _last_backup(store: ClusterStore, node: str) -> float | None:
    try:
        events = await store.event_log(node).read()
    except (ConfigError, UnicodeDecodeError) as exc:
        # An event this version cannot parse (a newer writer's kind, a damaged value): the
        # rest of the page stands.
        log.warning("event=metrics_events_unreadable error=%r", str(exc))
        return None
    stamps = [e.ts for e in events if e.kind == BACKUP_CREATED]
    return max(stamps) if stamps else None


class ClusterCollector(Collector):
    """The families of one reading, one process's observations, and the local components'."""

    def __init__(
        self,
        reading: ClusterReading,
        observations: Observations,
        components: Sequence[Metric] = (),
    ) -> None:
        self.reading = reading
        self.observations = observations
        self.components = components

    def collect(self) -> Iterator[Metric]:
        r = self.reading
        info = GaugeMetricFamily(
            P + "cluster_info", "1, naming the cluster and the node serving this page",
            labels=["cluster", "node"],
        )  # fmt: skip
        info.add_metric([r.cluster, r.node], 1.0)
        yield info
        yield _gauge("up", "1 if the engine answered this scrape's read in time", float(r.up))
        if r.up:
            yield _gauge("quorate", "1 if the engine has a majority of its voters", float(r.quorum))
        if r.state is not None:
            yield from _controller_families(r)
            yield from _node_families(r.state)
            yield from _resource_families(r.state)
            yield from _backup_families(r)
        yield from _process_families(self.observations)
        yield from self.components


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(P + name, doc, value=value)


def _controller_families(r: ClusterReading) -> Iterator[Metric]:
    who = GaugeMetricFamily(P + "controller", "1 for the node that is controller", labels=["node"])
    if r.controller is not None:
        who.add_metric([r.controller.node], 1.0)
    term = r.controller.term if r.controller is not None else 0
    mine = r.controller is not None and r.controller.node == r.node
    yield who
    yield _gauge("controller_term", "the controller's term (0 while there is none)", term)
    yield _gauge("is_controller", "1 if the node serving this page is controller", float(mine))


def _node_state(n: NodeState) -> str:
    return "fenced" if n.status == "lost" and n.fenced else n.status


def _node_families(state: ClusterState) -> Iterator[Metric]:
    counts = dict.fromkeys(NODE_STATES, 0)
    per_node = GaugeMetricFamily(
        P + "node_state", "1 for each node's current state", labels=["node", "state"]
    )
    standby = GaugeMetricFamily(P + "node_standby", "1 if the node is in standby", labels=["node"])
    maint = GaugeMetricFamily(
        P + "node_maintenance", "1 if the node is in maintenance", labels=["node"]
    )
    for n in state.nodes:
        counts[_node_state(n)] += 1
        per_node.add_metric([n.name, _node_state(n)], 1.0)
        standby.add_metric([n.name], float(n.standby))
        maint.add_metric([n.name], float(n.maintenance))
    nodes = GaugeMetricFamily(P + "nodes", "nodes by state", labels=["state"])
    for name, count in counts.items():
        nodes.add_metric([name], count)
    yield from (nodes, per_node, standby, maint)


def _resource_families(state: ClusterState) -> Iterator[Metric]:
    down = {n.name for n in state.nodes if n.down}
    live = [i for i in state.instances if i.node not in down]
    by_role = GaugeMetricFamily(
        P + "resources", "resource instances by role (on nodes not down)", labels=["role"]
    )
    for role in INSTANCE_ROLES:
        by_role.add_metric([role], sum(1 for i in live if i.role == role))
    instances = GaugeMetricFamily(
        P + "resource_instances",
        "1 for each resource instance not stopped, by node and role",
        labels=["resource", "node", "role"],
    )
    for i in live:
        if i.role != "stopped":
            instances.add_metric([i.resource, i.node, i.role], 1.0)
    fails = GaugeMetricFamily(
        P + "fail_count", "failures of a resource on a node (until cleared or expired)",
        labels=["resource", "node"],
    )  # fmt: skip
    for f in state.failcounts:
        fails.add_metric([f.resource, f.node], f.count)
    yield from (by_role, instances, fails)


def _backup_families(r: ClusterReading) -> Iterator[Metric]:
    if r.last_backup is None:
        return  # never backed up (or trimmed from the log): absent, so an alert on absence fires
    yield _gauge(
        "backup_last_timestamp_seconds", "Unix time of the newest backup recorded", r.last_backup
    )
    yield _gauge("backup_age_seconds", "seconds since the newest backup", r.now - r.last_backup)


def _histogram(name: str, doc: str, h: Histogram) -> HistogramMetricFamily:
    buckets = [("+Inf" if b == float("inf") else repr(b), float(n)) for b, n in h.cumulative()]
    return HistogramMetricFamily(P + name, doc, buckets=buckets, sum_value=h.total)


def _process_families(o: Observations) -> Iterator[Metric]:
    yield _histogram(
        "lease_renewal_duration_seconds", "member lease renewals, sent to confirmed",
        o.lease_renewal,
    )  # fmt: skip
    yield CounterMetricFamily(
        P + "lease_renewal_failures", "renewals not confirmed", value=o.lease_renewal_failures
    )
    yield _histogram(
        "scheduler_run_duration_seconds", "scheduler runs by this node's controller",
        o.scheduler_run,
    )  # fmt: skip
    fences = CounterMetricFamily(
        P + "fence_operations", "fences by this node's controller, by target and result",
        labels=["node", "result"],
    )  # fmt: skip
    for (node, result), count in sorted(o.fences.items()):
        fences.add_metric([node, result], count)
    yield fences
    yield _histogram("fence_duration_seconds", "fence request to its answer", o.fence_duration)
    failovers = CounterMetricFamily(
        P + "failovers", "failovers finished by this node's controller", labels=["resource"]
    )
    for resource, count in sorted(o.failovers.items()):
        failovers.add_metric([resource], count)
    yield failovers
    yield _histogram(
        "failover_duration_seconds", "detected failure to the new instance started",
        o.failover_duration,
    )  # fmt: skip


def render(
    reading: ClusterReading, observations: Observations, components: Sequence[Metric] = ()
) -> tuple[bytes, str]:
    """The page: (body, content type)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ClusterCollector(reading, observations, components))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class MetricsEndpoint:
    """One node's ``/metrics``: reads the cluster at most once per `MIN_READ_INTERVAL`."""

    def __init__(
        self,
        store: ClusterStore,
        spec: Callable[[], ClusterSpec],
        node: str,
        observations: Observations,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._spec = spec
        self._node = node
        self._observations = observations
        self._clock = clock
        self._wall = wall
        self._lock = asyncio.Lock()
        self._reading: ClusterReading | None = None
        self._components: list[Metric] = []
        self._read_at = float("-inf")
        self._last_backup: float | None = None
        self._backup_read_at = float("-inf")

    async def reading(self) -> tuple[ClusterReading, list[Metric]]:
        """The cluster and the local components' families, read anew past the interval."""
        # One read at a time: scrapes that arrive meanwhile wait for it and share it.
        async with self._lock:
            if self._reading is None or self._clock() - self._read_at >= MIN_READ_INTERVAL:
                spec = self._spec()
                backup_due = self._clock() - self._backup_read_at >= BACKUP_READ_INTERVAL
                reading = await read_cluster(
                    self._store, spec, self._node, self._wall(), with_backup=backup_due
                )
                reading = self._with_last_backup(reading, backup_due)
                local = (
                    [] if reading.state is None
                    else local_components(spec, reading.state, self._node)
                )  # fmt: skip
                self._components = await scrape_components(local) if local else []
                self._reading = reading
                self._read_at = self._clock()
            return self._reading, self._components

    def _with_last_backup(self, reading: ClusterReading, read_now: bool) -> ClusterReading:
        """The reading with the newest backup known: read now, or kept from the last read."""
        if reading.state is None:
            return reading  # nothing read: the backup is asked again next time
        if read_now:
            self._last_backup, self._backup_read_at = reading.last_backup, self._clock()
            return reading
        return replace(reading, last_backup=self._last_backup)

    async def metrics_response_body(self) -> tuple[bytes, str]:
        """(body, content type) of ``GET /metrics``."""
        reading, components = await self.reading()
        return render(reading, self._observations, components)

    def handler(self) -> Callable[[web.Request], Awaitable[web.Response]]:
        """The aiohttp handler to route ``GET /metrics`` to (behind the ``read`` role)."""

        async def metrics(_: web.Request) -> web.Response:
            body, content_type = await self.metrics_response_body()
            return web.Response(body=body, headers={"Content-Type": content_type})

        return metrics
