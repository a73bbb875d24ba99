"""``/metrics``: the families built from a cluster reading and a process's observations, the
read from the store, and the page served by an aiohttp handler."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest

from hakeeper.api.metrics import (
    BACKUP_CREATED,
    BACKUP_READ_INTERVAL,
    ClusterReading,
    MetricsEndpoint,
    read_cluster,
    render,
)
from hakeeper.errors import Unreachable
from hakeeper.model.records import InstanceStatus, MemberRecord, NodeFlags
from hakeeper.model.state import ClusterState, FailCount, Instance, NodeState
from hakeeper.model.timing import PROFILES
from hakeeper.runtime.election import Controller
from hakeeper.runtime.observations import Observations
from hakeeper.runtime.store import ClusterStore
from tests.api.metrics_support import (
    KEYS,
    Samples,
    fetch,
    in_memory_store,
    samples,
    serving,
    three_node_spec,
)
from tests.fakes import LocalCoordinator, VirtualClock

NOW = 1_700_000_000.0


def page(reading: ClusterReading, observations: Observations | None = None) -> Samples:
    body, _ = render(reading, observations or Observations())
    return samples(body.decode())


def one(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def busy_cluster() -> ClusterState:
    """n1 online (controller), n2 lost and fenced, n3 online in standby; web runs on n1 and
    failed once on n2; db is promoted on n1 and started on n3."""
    return ClusterState(
        now=NOW,
        nodes=(
            NodeState("n1"),
            NodeState("n2", status="lost", fenced=True),
            NodeState("n3", standby=True),
        ),
        instances=(
            Instance("web", "n1", "started"),
            Instance("web", "n2", "started"),  # stale: n2 is down
            Instance("db", "n1", "promoted"),
            Instance("db", "n3", "started"),
        ),
        failcounts=(FailCount("web", "n2", 1, NOW - 60),),
    )


def test_the_cluster_families_of_a_reading() -> None:
    reading = ClusterReading(
        "c1", "n1", up=True, quorum=True, controller=Controller("n1", 7),
        state=busy_cluster(), last_backup=NOW - 100, now=NOW,
    )  # fmt: skip
    got = page(reading)

    assert got[one("hakeeper_cluster_info", cluster="c1", node="n1")] == 1
    assert got[one("hakeeper_up")] == 1
    assert got[one("hakeeper_quorate")] == 1
    assert got[one("hakeeper_controller", node="n1")] == 1
    assert got[one("hakeeper_controller_term")] == 7
    assert got[one("hakeeper_is_controller")] == 1
    assert got[one("hakeeper_nodes", state="online")] == 2
    assert got[one("hakeeper_nodes", state="fenced")] == 1
    assert got[one("hakeeper_node_state", node="n2", state="fenced")] == 1
    assert got[one("hakeeper_node_standby", node="n3")] == 1
    assert got[one("hakeeper_resources", role="started")] == 2  # n2's is not counted: down
    assert got[one("hakeeper_resources", role="promoted")] == 1
    assert got[one("hakeeper_resource_instances", resource="db", node="n1", role="promoted")] == 1
    assert one("hakeeper_resource_instances", resource="web", node="n2", role="started") not in got
    assert got[one("hakeeper_fail_count", resource="web", node="n2")] == 1
    assert got[one("hakeeper_backup_age_seconds")] == 100
    assert got[one("hakeeper_backup_last_timestamp_seconds")] == NOW - 100


def test_every_node_state_and_instance_role_is_present_at_zero() -> None:
    got = page(ClusterReading("c1", "n2", True, True, None, ClusterState(now=NOW), None, NOW))

    for state in ("online", "offline", "lost", "fenced"):
        assert got[one("hakeeper_nodes", state=state)] == 0
    for role in ("started", "promoted", "stopped", "failed", "unknown"):
        assert got[one("hakeeper_resources", role=role)] == 0
    assert got[one("hakeeper_controller_term")] == 0
    assert got[one("hakeeper_is_controller")] == 0
    assert not any(name == "hakeeper_backup_age_seconds" for name, _ in got)


def test_without_quorum_only_quorum_and_this_process_are_shown() -> None:
    got = page(ClusterReading("c1", "n1", up=True, quorum=False, now=NOW))

    assert got[one("hakeeper_quorate")] == 0
    assert not any(name.startswith("hakeeper_nodes") for name, _ in got)
    assert one("hakeeper_lease_renewal_duration_seconds_count") in got


def test_the_observations_become_counters_and_histograms() -> None:
    o = Observations()
    for seconds in (4.0, 12.0):
        o.failover_finished("web", seconds)
    o.fence_finished("n2", True, 3.0)
    o.fence_finished("n2", False, 60.0)
    o.lease_renewed(0.004)
    o.lease_renewal_failed()
    o.scheduler_ran(0.0007)

    got = page(ClusterReading("c1", "n1", up=False), o)

    assert got[one("hakeeper_up")] == 0
    assert got[one("hakeeper_failovers_total", resource="web")] == 2
    assert got[one("hakeeper_failover_duration_seconds_bucket", le="5.0")] == 1
    assert got[one("hakeeper_failover_duration_seconds_bucket", le="+Inf")] == 2
    assert got[one("hakeeper_failover_duration_seconds_sum")] == 16
    assert got[one("hakeeper_fence_operations_total", node="n2", result="success")] == 1
    assert got[one("hakeeper_fence_operations_total", node="n2", result="failure")] == 1
    assert got[one("hakeeper_fence_duration_seconds_count")] == 2
    assert got[one("hakeeper_lease_renewal_duration_seconds_bucket", le="0.005")] == 1
    assert got[one("hakeeper_lease_renewal_failures_total")] == 1
    assert got[one("hakeeper_scheduler_run_duration_seconds_bucket", le="0.001")] == 1


async def test_a_read_of_the_store_finds_the_controller_nodes_instances_and_fail_counts() -> None:
    _, store = in_memory_store()
    spec = three_node_spec()
    for node in ("n1", "n2"):
        membership = store.membership(
            MemberRecord(node, "127.0.0.1"), PROFILES["fast"], time.monotonic
        )
        lease = await membership.join()
        if node == "n1":
            await store.election("n1").campaign(lease)
    await store.report(InstanceStatus("web", "n2", 0, "started", 1, time.time()))
    await store.record_failure("n1", "web", time.time())
    await store.set_node_flags("n2", NodeFlags(maintenance=True))

    reading = await read_cluster(store, spec, "n2", time.time())
    got = page(reading)

    assert (reading.up, reading.quorum) == (True, True)
    assert got[one("hakeeper_controller", node="n1")] == 1
    assert got[one("hakeeper_is_controller")] == 0
    assert got[one("hakeeper_nodes", state="online")] == 2
    assert got[one("hakeeper_nodes", state="offline")] == 1  # n3: in the config, never joined
    assert got[one("hakeeper_node_maintenance", node="n2")] == 1
    assert got[one("hakeeper_resource_instances", resource="web", node="n2", role="started")] == 1
    assert got[one("hakeeper_fail_count", resource="web", node="n1")] == 1


class SilentStore(ClusterStore):
    """An engine that never answers (a partitioned etcd endpoint)."""

    async def has_quorum(self) -> bool:
        await asyncio.Event().wait()
        return False


class UnreachableStore(ClusterStore):
    async def has_quorum(self) -> bool:
        raise Unreachable("no engine at 127.0.0.1:1")


@pytest.mark.parametrize("store_type", [SilentStore, UnreachableStore])
async def test_an_engine_that_does_not_answer_gives_up_0_within_the_timeout(
    store_type: type[ClusterStore],
) -> None:
    store = store_type(LocalCoordinator(), KEYS)

    reading = await asyncio.wait_for(
        read_cluster(store, three_node_spec(), "n1", NOW, timeout=0.2), 30
    )

    got = page(reading)
    assert got[one("hakeeper_up")] == 0
    assert one("hakeeper_quorate") not in got


class CountingStore(ClusterStore):
    reads = 0

    async def has_quorum(self) -> bool:
        self.reads += 1
        return await super().has_quorum()


async def test_scrapes_within_the_interval_share_one_read_of_the_engine() -> None:
    store = CountingStore(LocalCoordinator(), KEYS)
    clock = VirtualClock()
    endpoint = MetricsEndpoint(store, three_node_spec, "n1", Observations(), clock=clock)

    for _scrape in range(5):
        await endpoint.metrics_response_body()
    clock.advance(1.0)
    await endpoint.metrics_response_body()

    assert store.reads == 2


async def test_the_handler_serves_the_page_in_prometheus_text_format() -> None:
    _, store = in_memory_store()
    observations = Observations()
    observations.failover_finished("web", 3.0)
    endpoint = MetricsEndpoint(store, three_node_spec, "n1", observations)

    async with serving("/metrics", endpoint.handler()) as url:
        status, content_type, body = await fetch(url)

    assert status == 200
    assert content_type.startswith("text/plain; version=")
    got = samples(body)
    assert got[one("hakeeper_quorate")] == 1
    assert got[one("hakeeper_failovers_total", resource="web")] == 1


@dataclass(frozen=True)
class LoggedEvent:
    kind: str
    ts: float


class BackupLog:
    """The event log as the metrics read it: a backup 100 s ago, then another event."""

    def __init__(self) -> None:
        self.reads = 0

    async def read(self) -> list[LoggedEvent]:
        self.reads += 1
        return [LoggedEvent(BACKUP_CREATED, NOW - 100), LoggedEvent("node.joined", NOW - 5)]


class BackupStore(ClusterStore):
    log = BackupLog()

    def event_log(self, writer: str) -> BackupLog:  # type: ignore[override]
        return self.log


async def test_the_backup_age_comes_from_the_event_log_read_once_a_minute() -> None:
    store = BackupStore(LocalCoordinator(), KEYS)
    store.log = BackupLog()
    clock = VirtualClock()
    endpoint = MetricsEndpoint(
        store, three_node_spec, "n1", Observations(), clock=clock, wall=lambda: NOW
    )

    ages = []
    for step in (0.0, 1.0, BACKUP_READ_INTERVAL):
        clock.advance(step)
        body, _ = await endpoint.metrics_response_body()
        ages.append(samples(body.decode())[one("hakeeper_backup_age_seconds")])

    assert ages == [100, 100, 100]
    assert store.log.reads == 2
