"""The balancer's and the session store's metrics on the daemon's ``/metrics``.

Both run as resource processes of their own (the ``balancer`` and ``sessions`` agents), not
inside the daemon, so the daemon asks them, for the instances the cluster says run on this
node, at scrape time:

- a **balancer** serves its own Prometheus page at ``/metrics`` of its control API
  (``[api] bind`` in its file; readable without a token from loopback). Its families are
  re-emitted with a ``resource`` label, so two balancers on one node stay apart. A balancer
  without an API, or bound to a non-loopback address only (a read from there needs its
  token, which the daemon does not hold), is listed as ``hakeeper_component_up 0``: give it
  ``bind = "127.0.0.1:PORT"`` (or a wildcard) to have it on this page.
- a **session store** answers memcached's ``stats`` on its client port (after the
  ``authfile``'s first credential when it has one); the numbers become
  ``hakeeper_sessions_*`` families in memcached_exporter's words.

Every ask has a `COMPONENT_TIMEOUT` and a size cap (`MAX_COMPONENT_BYTES` for a page,
`MAX_STATS_LINES` for a stats answer), so a hung or babbling component costs a scrape a
bounded time, memory and work on the daemon's event loop, never the page:
``hakeeper_component_up{kind, resource}`` says which answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aiohttp import ClientError, ClientSession, ClientTimeout
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from hakeeper.balancer.config import is_loopback, load_config
from hakeeper.errors import ConfigError
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.roles import RUNNING_ROLES
from hakeeper.model.state import ClusterState
from hakeeper.sessions.auth import read_authfile

log = logging.getLogger(__name__)

COMPONENT_TIMEOUT = 2.0
MAX_COMPONENT_BYTES = 1 << 20
#: A store's ``stats`` answer is some 25 short lines: anything much longer is not one, and
#: reading it further would only spend the daemon's event loop.
MAX_STATS_LINES = 256
MAX_STATS_LINE = 1024
WILDCARDS = ("0.0.0.0", "::", "")
ComponentKind = Literal["balancer", "sessions"]

#: memcached ``stats`` name → (family, help, counter?).
SESSION_STATS: Mapping[str, tuple[str, str, bool]] = {
    "curr_items": ("current_items", "items stored now", False),
    "total_items": ("items", "items stored since start", True),
    "bytes": ("current_bytes", "bytes of items stored now", False),
    "limit_maxbytes": ("limit_bytes", "the memory bound", False),
    "evictions": ("items_evicted", "items evicted by the memory bound", True),
    "curr_connections": ("current_connections", "client connections open", False),
    "total_connections": ("connections", "client connections accepted", True),
    "rejected_connections": ("connections_rejected", "connections refused at the limit", True),
    "hakeeper_seq": ("log_sequence", "position of this node's replication log", False),
    "hakeeper_commit": ("committed_sequence", "position acknowledged by a majority", False),
}


@dataclass(frozen=True, slots=True)
class Component:
    """A balancer or session store instance that runs on this node, and where to ask it."""

    kind: ComponentKind
    resource: str
    host: str | None  # None: it serves nothing this node can read (see the module text)
    port: int = 0
    authfile: Path | None = None


def local_components(spec: ClusterSpec, state: ClusterState, node: str) -> list[Component]:
    """The balancer and sessions instances the snapshot shows running on ``node``."""
    running = {i.resource for i in state.instances if i.node == node and i.role in RUNNING_ROLES}
    found: list[Component] = []
    for p in spec.primitives:
        if p.id not in running:
            continue
        if p.agent == "balancer":
            found.append(_balancer(p.id, p.params))
        elif p.agent == "sessions":
            found.append(_sessions(p.id, p.params, node))
    return found


def _balancer(resource: str, params: Mapping[str, object]) -> Component:
    try:
        api = load_config(Path(str(params["config"]))).api
    except (ConfigError, KeyError) as exc:
        log.warning("event=metrics_balancer_unreadable resource=%s error=%r", resource, str(exc))
        return Component("balancer", resource, None)
    bound = api.host_port
    if bound is None:
        return Component("balancer", resource, None)
    host, port = bound
    if host in WILDCARDS:
        return Component("balancer", resource, "127.0.0.1", port)
    return Component("balancer", resource, host if is_loopback(host) else None, port)


def _sessions(resource: str, params: Mapping[str, object], node: str) -> Component:
    nodes = params.get("nodes")
    port = params.get("port")
    address = nodes.get(node) if isinstance(nodes, Mapping) else None
    if not isinstance(address, str) or not isinstance(port, int):
        return Component("sessions", resource, None)
    authfile = Path(str(params["authfile"])) if "authfile" in params else None
    return Component("sessions", resource, address, port, authfile)


async def scrape_components(components: Iterable[Component]) -> list[Metric]:
    """Every component asked at once, each within `COMPONENT_TIMEOUT`; their families."""
    targets = list(components)
    answers = await asyncio.gather(*(_ask(c) for c in targets))
    up = GaugeMetricFamily(
        "hakeeper_component_up", "1 if a local balancer or session store answered this scrape",
        labels=["kind", "resource"],
    )  # fmt: skip
    families: dict[str, Metric] = {}
    for component, answer in zip(targets, answers, strict=True):
        up.add_metric([component.kind, component.resource], float(answer is not None))
        for family in answer or ():
            _merge(families, family)
    return [up, *families.values()]


async def _ask(component: Component) -> list[Metric] | None:
    if component.host is None:
        return None
    try:
        async with asyncio.timeout(COMPONENT_TIMEOUT):
            if component.kind == "balancer":
                return await _balancer_families(component)
            return await _session_families(component)
    except (OSError, TimeoutError, ClientError, ConfigError, ValueError) as exc:
        log.warning(
            "event=metrics_component_failed kind=%s resource=%s error=%r",
            component.kind, component.resource, str(exc) or type(exc).__name__,
        )  # fmt: skip
        return None


async def _balancer_families(c: Component) -> list[Metric]:
    host = f"[{c.host}]" if c.host is not None and ":" in c.host else c.host
    url = f"http://{host}:{c.port}/metrics"
    async with (
        ClientSession(timeout=ClientTimeout(total=COMPONENT_TIMEOUT)) as session,
        session.get(url) as response,
    ):
        if response.status != 200:
            raise ValueError(f"{url} answered {response.status}")
        body = await response.content.read(MAX_COMPONENT_BYTES + 1)
    if len(body) > MAX_COMPONENT_BYTES:
        raise ValueError(f"{url}: page larger than {MAX_COMPONENT_BYTES} bytes")
    return list(_labelled(text_string_to_metric_families(body.decode()), c.resource))


def _labelled(families: Iterable[Metric], resource: str) -> Iterator[Metric]:
    """The same families with ``resource`` on every sample."""
    for family in families:
        copy = Metric(family.name, family.documentation, family.type, family.unit)
        for s in family.samples:
            copy.add_sample(s.name, {**s.labels, "resource": resource}, s.value)
        yield copy


def _merge(families: dict[str, Metric], family: Metric) -> None:
    """One family per name on the page: two balancers' samples go under one header."""
    kept = families.setdefault(
        family.name, Metric(family.name, family.documentation, family.type, family.unit)
    )
    kept.samples.extend(family.samples)


async def _session_families(c: Component) -> list[Metric]:
    assert c.host is not None
    reader, writer = await asyncio.open_connection(c.host, c.port, limit=MAX_STATS_LINE)
    try:
        if c.authfile is not None:
            user, password = read_authfile(c.authfile).entries[0]
            token = user + b" " + password
            writer.write(b"set hakeeper-metrics 0 0 %d\r\n%s\r\n" % (len(token), token))
            if await reader.readline() != b"STORED\r\n":
                raise ValueError(f"{c.host}:{c.port} refused the authfile's first credential")
        writer.write(b"stats\r\n")
        stats = await _read_stats(reader)
    finally:
        writer.close()
    return list(_session_metrics(stats, c.resource))


async def _read_stats(reader: asyncio.StreamReader) -> dict[str, str]:
    stats: dict[str, str] = {}
    while (line := await reader.readline()) != b"END\r\n":
        if not line.endswith(b"\r\n") or len(stats) >= MAX_STATS_LINES:
            raise ValueError("the stats answer ended early or never ended")
        parts = line.decode(errors="replace").rstrip("\r\n").split(" ", 2)
        if len(parts) != 3 or parts[0] != "STAT":
            raise ValueError(f"not a stats line: {line[:80]!r}")
        stats[parts[1]] = parts[2]
    return stats


def _session_metrics(stats: Mapping[str, str], resource: str) -> Iterator[Metric]:
    for stat, (name, doc, counter) in SESSION_STATS.items():
        if stat not in stats:
            continue
        family: Metric
        if counter:
            family = CounterMetricFamily("hakeeper_sessions_" + name, doc, labels=["resource"])
        else:
            family = GaugeMetricFamily("hakeeper_sessions_" + name, doc, labels=["resource"])
        family.add_metric([resource], float(stats[stat]))
        yield family
    primary = GaugeMetricFamily(
        "hakeeper_sessions_primary", "1 if this node's store is the primary", labels=["resource"]
    )
    primary.add_metric([resource], float(stats.get("hakeeper_role") == "primary"))
    yield primary
