"""The measured report on synthetic event logs whose answers are known by construction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hakeeper.availability.measure import Report, Timeline, measure, timelines
from hakeeper.availability.services import ResourceRule, ServiceRule, Services, load
from hakeeper.errors import ConfigError
from hakeeper.model.events import (
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
    parse_lines,
)

EXAMPLES = Path(__file__).parents[2] / "examples" / "availability"
T0 = 1717200000.0
THIRTY_DAYS = 30 * 86400.0


def two_nodes_vip_fails_over() -> list[Event]:
    """vip on a; a lost at 100, vip on b at 110 (failover 10 s); a back at 400; end at 1000."""
    return [
        NodeJoined(0, "a"),
        NodeJoined(0, "b"),
        ResourceStarted(0, "vip", "a"),
        NodeLost(100, "a"),
        FailoverStarted(100, "vip", "a"),
        NodeFenced(105, "a", "ipmi", 5.0),
        ResourceStarted(110, "vip", "b"),
        FailoverFinished(110, "vip", "a", "b", 10.0),
        NodeJoined(400, "a"),
        ResourceStopped(1000, "vip", "b", reason="shutdown"),
    ]


VIP_ONLY = Services(resources={"vip": ResourceRule("vip", exclusive=True)})


def test_node_downtime_is_from_lost_to_rejoined() -> None:
    report = measure(two_nodes_vip_fails_over(), VIP_ONLY, end=1000)
    node_a = next(s for s in report.nodes if s.name == "a")
    assert (node_a.downtime, node_a.failures, node_a.repairs) == (300.0, 1, 1)


def test_node_mtbf_is_uptime_per_failure() -> None:
    report = measure(two_nodes_vip_fails_over(), VIP_ONLY, end=1000)
    node_a = next(s for s in report.nodes if s.name == "a")
    assert node_a.mtbf == pytest.approx(700.0)


def test_exclusive_resource_outage_is_the_failover_gap() -> None:
    report = measure(two_nodes_vip_fails_over(), VIP_ONLY, end=999)
    (vip,) = report.resources
    assert (vip.downtime, vip.failures, vip.mttr) == (10.0, 1, 10.0)
    assert vip.availability == pytest.approx(989 / 999)


def test_failover_count_and_duration_come_from_the_finished_events() -> None:
    (vip,) = measure(two_nodes_vip_fails_over(), VIP_ONLY, end=999).resources
    assert (vip.failovers, vip.unfinished_failovers) == ((10.0,), 0)


def test_fencing_durations_are_collected() -> None:
    assert measure(two_nodes_vip_fails_over(), VIP_ONLY).fencings == (5.0,)


def test_outage_open_at_the_end_is_cut_at_the_window_end() -> None:
    report = measure(two_nodes_vip_fails_over(), VIP_ONLY, end=1200)
    (vip,) = report.resources
    last = vip.outages[-1]
    assert (last.start, last.end, last.open_end) == (1000, 1200, True)


def test_window_start_cuts_an_outage_that_began_before_it() -> None:
    (vip,) = measure(two_nodes_vip_fails_over(), VIP_ONLY, start=105, end=999).resources
    assert (vip.downtime, vip.failures, vip.repairs) == (5.0, 0, 1)
    assert vip.outages[0].open_start


def test_clone_is_up_while_required_instances_run() -> None:
    events: list[Event] = [
        *(ResourceStarted(0, "web", n) for n in ("a", "b", "c")),
        ResourceFailed(10, "web", "a"),  # 2 left: still up
        ResourceFailed(20, "web", "b"),  # 1 left: down
        ResourceStarted(50, "web", "a"),  # 2 again: up
        ResourceStarted(100, "web", "b"),
    ]
    services = Services(resources={"web": ResourceRule("web", required=2)})
    (web,) = measure(events, services).resources
    assert (web.downtime, web.failures, web.instance_failures) == (30.0, 1, 2)


def test_promotion_at_one_instant_is_no_outage() -> None:
    events: list[Event] = [
        ResourceStarted(0, "db", "a", "primary"),
        ResourceStarted(0, "db", "b", "replica"),
        ResourceStopped(50, "db", "a", "primary", "move"),
        ResourceStopped(50, "db", "b", "replica", "promote"),
        ResourceStarted(50, "db", "b", "primary"),
        ResourceStarted(100, "db", "a", "replica"),
    ]
    services = Services(resources={"db": ResourceRule("db", exclusive=True, role="primary")})
    (db,) = measure(events, services).resources
    assert db.downtime == 0.0


def test_only_the_counted_role_keeps_a_resource_up() -> None:
    events: list[Event] = [
        ResourceStarted(0, "db", "a", "primary"),
        ResourceStarted(0, "db", "b", "replica"),
        ResourceFailed(10, "db", "a", "primary"),
        ResourceStarted(100, "db", "a", "primary"),
    ]
    services = Services(resources={"db": ResourceRule("db", exclusive=True, role="primary")})
    (db,) = measure(events, services).resources
    assert db.downtime == 90.0


def test_two_instances_of_an_exclusive_resource_are_reported_as_concurrent() -> None:
    events: list[Event] = [
        ResourceStarted(0, "vip", "a"),
        ResourceStarted(10, "vip", "b"),
        ResourceStopped(13, "vip", "a"),
        ResourceStopped(100, "vip", "b"),
    ]
    (vip,) = measure(events, VIP_ONLY).resources
    assert vip.concurrent == 3.0


def test_service_is_down_while_any_of_its_resources_is() -> None:
    events: list[Event] = [
        ResourceStarted(0, "vip", "a"),
        ResourceStarted(0, "web", "a"),
        ResourceFailed(10, "web", "a"),
        ResourceStarted(15, "web", "a"),
        ResourceFailed(12, "vip", "a"),
        ResourceStarted(20, "vip", "a"),
        ResourceStopped(100, "web", "a"),
    ]
    services = Services(services={"svc": ServiceRule("svc", ("vip", "web"))})
    (svc,) = measure(events, services, end=99).services
    assert (svc.downtime, svc.failures) == (10.0, 1)


def test_node_lost_ends_its_instances_without_a_stop_event() -> None:
    events: list[Event] = [
        NodeJoined(0, "a"),
        ResourceStarted(0, "web", "a"),
        NodeLost(10, "a"),
        NodeJoined(20, "a"),
        ResourceStarted(25, "web", "a"),
    ]
    (web,) = measure(events, end=50).resources
    assert web.downtime == 15.0


def test_quorum_downtime_is_between_lost_and_regained() -> None:
    events: list[Event] = [
        NodeJoined(0, "a"),
        QuorumLost(10, 1, 3),
        QuorumRegained(70, 2, 3),
        NodeLost(100, "a"),
    ]
    report = measure(events)
    assert (report.quorum.downtime, report.quorum.failures) == (60.0, 1)


def test_error_budget_used_is_downtime_over_allowed() -> None:
    # 10 s down in 10 000 s at 99.9 %: budget 10 s, all of it used.
    events: list[Event] = [
        ResourceStarted(0, "vip", "a"),
        ResourceFailed(100, "vip", "a"),
        ResourceStarted(110, "vip", "a"),
        ResourceStopped(10_000, "vip", "a"),
    ]
    (vip,) = measure(events, VIP_ONLY, target=0.999).resources
    assert vip.budget == pytest.approx(10.0)
    assert vip.budget_used == pytest.approx(1.0)


def test_observation_starts_at_first_up_so_start_up_is_not_an_outage() -> None:
    events: list[Event] = [NodeJoined(0, "a"), ResourceStarted(30, "web", "a"), NodeLost(100, "a")]
    (web,) = measure(events).resources
    assert (web.observed_from, web.observed, web.downtime) == (30, 70.0, 0.0)


def test_empty_log_is_refused() -> None:
    with pytest.raises(ConfigError, match="empty"):
        measure([])


def test_timeline_segments_are_clipped_to_the_window() -> None:
    line = Timeline(((0.0, True), (10.0, False), (20.0, True)))
    assert line.segments(5, 15) == [(5, 10, True), (10, 15, False)]


def test_timelines_are_keyed_by_kind_and_name() -> None:
    keys = set(timelines(two_nodes_vip_fails_over(), VIP_ONLY))
    assert keys == {"node:a", "node:b", "resource:vip", "quorum:cluster"}


def example_report() -> Report:
    with (EXAMPLES / "events.jsonl").open(encoding="utf-8") as lines:
        events = list(parse_lines(lines, "events.jsonl"))
    return measure(events, load(EXAMPLES / "services.toml"), end=T0 + THIRTY_DAYS)


def test_example_log_service_is_down_340_s_in_30_days() -> None:
    # 14 s (node lost, db promoted) + 75 s (two web instances died) + 248 s (quorum lost)
    # + 3 s (planned VIP move); see examples/availability/make_events.py.
    (shop,) = example_report().services
    assert (shop.downtime, shop.failures) == (340.0, 4)


def test_example_log_error_budget_at_99_95_percent() -> None:
    (shop,) = example_report().services
    assert shop.budget_used == pytest.approx(340 / (0.0005 * (THIRTY_DAYS - 2)))


def test_example_log_vip_failovers_and_longest_outage() -> None:
    vip = next(s for s in example_report().resources if s.name == "vip")
    longest = vip.longest
    assert vip.failovers == (9.5, 245.0)
    assert longest is not None
    assert longest.duration == 245.0


def test_report_to_dict_is_json_serialisable() -> None:
    json.dumps(example_report().to_dict(), allow_nan=False)


def test_services_file_exclusive_with_required_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("[resource.vip]\nexclusive = true\nrequired = 2\n")
    with pytest.raises(ConfigError, match=r"resource\.vip: an exclusive resource runs one"):
        load(path)


def test_services_file_bad_target_names_its_key(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[service.shop]\nresources = ["vip"]\ntarget = "lots"\n')
    with pytest.raises(ConfigError, match=r"service\.shop\.target: cannot read 'lots'"):
        load(path)
