"""Prometheus metrics built at scrape time from the plain counters the hot path bumps.

Names follow HAProxy's promex style with the ``hakeeper_balancer_`` prefix:
``server_up``, ``server_active``, ``server_weight``, ``requests_total``,
``connect_errors_total``, ``responses_5xx_total``, ``check_failures_total`` and the
``response_seconds`` histogram (time to the response head, http mode), each labelled by
``backend`` and ``server``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from hakeeper.balancer.servers import BUCKETS, Server

P = "hakeeper_balancer_"
LABELS = ["backend", "server"]


class BalancerCollector(Collector):
    def __init__(self, servers: Callable[[], Iterable[Server]]) -> None:
        self.servers = servers

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(P + "server_up", "1 if the server passes its checks", labels=LABELS)
        active = GaugeMetricFamily(P + "server_active", "requests in flight", labels=LABELS)
        weight = GaugeMetricFamily(P + "server_weight", "configured weight", labels=LABELS)
        requests = CounterMetricFamily(P + "requests", "requests or connections", labels=LABELS)
        connect = CounterMetricFamily(P + "connect_errors", "failed connects", labels=LABELS)
        errors = CounterMetricFamily(P + "responses_5xx", "5xx responses", labels=LABELS)
        checks = CounterMetricFamily(P + "check_failures", "failed checks", labels=LABELS)
        seconds = HistogramMetricFamily(
            P + "response_seconds", "time to the response head", labels=LABELS
        )
        for s in self.servers():
            labels = [s.backend, s.name]
            up.add_metric(labels, 1.0 if s.up else 0.0)
            active.add_metric(labels, s.active)
            weight.add_metric(labels, s.weight)
            requests.add_metric(labels, s.requests)
            connect.add_metric(labels, s.connect_errors)
            errors.add_metric(labels, s.responses_5xx)
            checks.add_metric(labels, s.check_failures)
            cumulative = 0
            buckets = []
            for bound, count in zip([*map(str, BUCKETS), "+Inf"], s.hist, strict=True):
                cumulative += count
                buckets.append((bound, float(cumulative)))
            seconds.add_metric(labels, buckets, s.hist_sum)
        yield from (up, active, weight, requests, connect, errors, checks, seconds)


def render(servers: Callable[[], Iterable[Server]]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BalancerCollector(servers))
    return generate_latest(registry)
