"""The controller's trim of the event log: the operator's bound, and engine trouble survived."""

from __future__ import annotations

from hakeeper.errors import Unreachable
from hakeeper.model.cluster import ClusterOptions
from hakeeper.model.events import NodeJoined
from hakeeper.runtime.event_retention import EventRetention
from hakeeper.runtime.events_log import EventLog
from hakeeper.runtime.keys import KeySpace
from tests.fakes import LocalCoordinator

KEYS = KeySpace("c1")


async def test_events_past_the_configured_age_are_trimmed_and_the_rest_kept() -> None:
    log = EventLog(LocalCoordinator(), KEYS, "n1")
    for ts in (1000.0, 5000.0, 9000.0):
        await log.append(NodeJoined(ts=ts, node="n1"))
    options = ClusterOptions(events_max_age=5000.0, events_max_count=100)
    retention = EventRetention(log, lambda: options, wall=lambda: 10_000.0)
    assert await retention.once() == 1
    assert [e.ts for e in await log.read()] == [5000.0, 9000.0]


async def test_the_bound_is_read_afresh_so_a_changed_config_applies_at_the_next_trim() -> None:
    log = EventLog(LocalCoordinator(), KEYS, "n1")
    for ts in (1.0, 2.0, 3.0):
        await log.append(NodeJoined(ts=ts, node="n1"))
    current = [ClusterOptions(events_max_count=100)]
    retention = EventRetention(log, lambda: current[0], wall=lambda: 10.0)
    assert await retention.once() == 0
    current[0] = ClusterOptions(events_max_count=1)
    assert await retention.once() == 2


async def test_an_engine_failure_skips_this_trim_and_leaves_the_task_running() -> None:
    class Down(LocalCoordinator):
        async def range(self, prefix: str):  # type: ignore[no-untyped-def]
            raise Unreachable("no member answered")

    retention = EventRetention(EventLog(Down(), KEYS, "n1"), ClusterOptions, wall=lambda: 1.0)
    assert await retention.once() == 0
