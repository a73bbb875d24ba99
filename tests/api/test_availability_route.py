"""``GET /v1/availability`` on the fake engine: a known event history gives known figures,
each service against the target the caller names, with the failovers in the window."""

from __future__ import annotations

import asyncio
import time

import pytest

from hakeeper.api import availability_route
from hakeeper.api.availability_route import AvailabilityReport, services_of, shared, summarize
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.events import (
    Event,
    FailoverFinished,
    FailoverStarted,
    NodeJoined,
    NodeLost,
    ResourceStarted,
)
from hakeeper.runtime.node_view import NodeView
from hakeeper.runtime.observations import Observations
from hakeeper.runtime.store import ClusterStore
from tests.api.conftest import Served
from tests.fakes import LocalCoordinator

HOUR = 3600.0
#: vip's outage in the history below: n1 is lost, vip starts on n2 a minute later.
OUTAGE = 60.0


def history(base: float) -> list[Event]:
    """The small cluster of tests/cli/conftest.py, up at ``base``; n1 lost 1000 s later."""
    return [
        NodeJoined(base, "n1"),
        NodeJoined(base, "n2"),
        ResourceStarted(base, "vip", "n1"),
        ResourceStarted(base, "web", "n1"),
        ResourceStarted(base, "web", "n2"),
        ResourceStarted(base, "fs", "n2"),
        ResourceStarted(base, "job", "n2"),
        NodeLost(base + 1000, "n1"),
        FailoverStarted(base + 1000, "vip", "n1", "node or instance failed"),
        ResourceStarted(base + 1000 + OUTAGE, "vip", "n2"),
        FailoverFinished(base + 1000 + OUTAGE, "vip", "n1", "n2", OUTAGE),
    ]


@pytest.fixture
async def logged(store: ClusterStore) -> None:
    """The history, written to the event log so that it began exactly an hour ago."""
    log = store.event_log("n1")
    for event in history(time.time() - HOUR):
        await log.append(event)


def by_name(body: dict[str, object]) -> dict[str, dict[str, object]]:
    services = body["services"]
    assert isinstance(services, list)
    return {s["name"]: s for s in services}


def test_every_top_level_resource_is_a_service_of_its_primitives(spec: ClusterSpec) -> None:
    services, kinds = services_of(spec)
    assert {name: rule.resources for name, rule in services.services.items()} == {
        "vip": ("vip",),
        "web-clone": ("web",),
        "reports": ("fs", "job"),
    }
    assert kinds == {"vip": "primitive", "web-clone": "clone", "reports": "group"}
    assert services.rule("vip").exclusive
    assert not services.rule("web").exclusive


async def test_a_known_history_gives_the_availability_and_budget_against_the_target(
    api: Served, logged: None
) -> None:
    status, body = await api.call("GET", "/v1/availability?window=1h&target=99%25", token="reader")
    assert status == 200, body
    assert body["window"]["length"] == HOUR
    assert body["target"] == pytest.approx(0.99)
    vip, clone, group = (by_name(body)[n] for n in ("vip", "web-clone", "reports"))
    # An hour observed, one minute down: 59/60; the 99 % budget is 36 s, 24 s overspent.
    assert vip["observed"] == pytest.approx(HOUR, abs=1.0)
    assert vip["downtime"] == pytest.approx(OUTAGE)
    assert vip["availability"] == pytest.approx(1 - OUTAGE / HOUR, abs=1e-6)
    assert vip["budget"] == pytest.approx(36.0, abs=0.1)
    assert vip["budget_left"] == pytest.approx(-24.0, abs=0.1)
    assert vip["verdict"] == "missed"
    assert vip["up_now"] is True
    assert vip["failovers"]["count"] == 1
    assert vip["failovers"]["max"] == OUTAGE
    # The clone kept an instance on n2, the group never left it.
    assert (clone["availability"], clone["verdict"]) == (1.0, "met")
    assert (group["availability"], group["verdict"]) == (1.0, "met")
    assert body["failovers"]["count"] == 1
    assert body["failovers"]["unfinished"] == 0


async def test_most_of_the_budget_spent_is_at_risk(api: Served, logged: None) -> None:
    # 98 %: 72 s allowed over the hour, 60 s spent (83 %).
    status, body = await api.call("GET", "/v1/availability?window=1h&target=98%25", token="reader")
    assert status == 200, body
    assert by_name(body)["vip"]["verdict"] == "at_risk"


async def test_without_a_target_the_figures_are_measured_and_the_budget_is_empty(
    api: Served, logged: None
) -> None:
    status, body = await api.call("GET", "/v1/availability?window=1h", token="reader")
    assert status == 200, body
    vip = by_name(body)["vip"]
    assert vip["availability"] == pytest.approx(1 - OUTAGE / HOUR, abs=1e-6)
    assert (vip["target"], vip["budget"], vip["verdict"]) == (None, None, "no_target")


async def test_an_empty_log_reports_every_service_as_not_observed(api: Served) -> None:
    status, body = await api.call("GET", "/v1/availability", token="reader")
    assert status == 200, body
    assert body["window"]["length"] == 30 * 24 * HOUR
    assert {s["verdict"] for s in body["services"]} == {"not_observed"}
    assert {s["availability"] for s in body["services"]} == {None}


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("window=5s", "window"),
        ("window=401d", "window"),
        ("window=30", "window"),
        ("target=0", "target"),
        ("target=101%25", "target"),
        ("target=lots", "target"),
    ],
)
async def test_a_window_or_target_out_of_bounds_is_a_400_naming_it(
    api: Served, query: str, named: str
) -> None:
    status, body = await api.call("GET", f"/v1/availability?{query}", token="reader")
    assert status == 400
    assert body["error"].startswith(named)


async def test_availability_needs_the_read_role(api: Served) -> None:
    status, _ = await api.call("GET", "/v1/availability")
    assert status == 401


async def test_requests_that_arrive_while_it_is_computed_share_one_computation(
    monkeypatch: pytest.MonkeyPatch, coord: LocalCoordinator, store: ClusterStore, spec: ClusterSpec
) -> None:
    view = NodeView("n1", lambda: spec, store, dict, coord, lambda: True, Observations())
    started, release = asyncio.Event(), asyncio.Event()
    computed = []

    async def compute(_view: NodeView, window: float, target: float | None) -> AvailabilityReport:
        computed.append(window)
        started.set()
        await release.wait()
        return summarize([], spec, time.time(), window, target)

    monkeypatch.setattr(availability_route, "_compute", compute)
    async with asyncio.timeout(10):
        waiting = [asyncio.create_task(shared(view, HOUR, None)) for _ in range(5)]
        await started.wait()  # the other four were scheduled before this wakes: all wait now
        release.set()
        answers = await asyncio.gather(*waiting)
        assert computed == [HOUR]
        assert all(answer is answers[0] for answer in answers)
        # Once answered it is not kept: the next request counts up to its own now.
        assert await shared(view, HOUR, None) is not answers[0]
        assert computed == [HOUR, HOUR]
