"""The event log format: every kind round-trips, and bad lines are refused with their place."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hakeeper.errors import ConfigError
from hakeeper.model.events import (
    EVENT_TYPES,
    AlertDelivered,
    AlertFailed,
    BackupCreated,
    ConfigRefused,
    ControllerElected,
    DrillFinished,
    Event,
    FailoverFinished,
    FailoverStarted,
    JobFailed,
    JobOverdue,
    NodeFenced,
    NodeJoined,
    NodeLost,
    OperatorAction,
    QuorumLost,
    QuorumRegained,
    ResourceFailed,
    ResourceStarted,
    ResourceStopped,
    from_json,
    parse_lines,
    sort_events,
    to_json,
)

ONE_OF_EACH: list[Event] = [
    NodeJoined(1.0, "n1"),
    NodeLost(2.0, "n1", "lease_expired"),
    NodeFenced(3.0, "n1", "ipmi", 6.5, ok=False),
    ResourceStarted(4.0, "db", "n2", "primary"),
    ResourceStopped(5.0, "db", "n2", "replica", "promote"),
    ResourceFailed(6.0, "web", "n3", "started", "monitor timeout"),
    FailoverStarted(7.0, "vip", "n1", "node lost"),
    FailoverFinished(8.0, "vip", "n1", "n2", 9.25),
    QuorumLost(9.0, 1, 3),
    QuorumRegained(10.0, 2, 3),
    ControllerElected(11.0, "n2", 42),
    ConfigRefused(12.0, "n3", 77, "stored config rev 77: not UTF-8"),
    AlertDelivered(13.0, "mail", "node.lost", 80, "root@example.org", 1),
    AlertFailed(14.0, "hook", "node.lost", 80, "HTTP 500", "", 4),
    BackupCreated(13.0, "20261206T103749Z-bcab985f", 3000, 0.5, 1842),
    DrillFinished(14.0, "20261206T103749Z-bcab985f", True, 12.5, 3600.0),
    JobFailed(15.0, "backup", "StoreUnavailable: /var/backups: disk full"),
    JobOverdue(16.0, "backup", 7300.0),
    OperatorAction(13.0, "alice", "resource.move", "web n2", "n1"),
]


def test_every_kind_is_covered_by_the_round_trip_cases() -> None:
    assert {event.kind for event in ONE_OF_EACH} == set(EVENT_TYPES)


@pytest.mark.parametrize("event", ONE_OF_EACH, ids=lambda e: e.kind)
def test_each_kind_round_trips_through_one_json_line(event: Event) -> None:
    line = to_json(event)
    assert "\n" not in line
    assert from_json(line) == event


def test_kind_comes_first_in_the_json_object() -> None:
    assert next(iter(json.loads(to_json(NodeJoined(1.0, "n1"))))) == "kind"


def test_integer_timestamp_is_read_as_float() -> None:
    event = from_json('{"kind": "node.joined", "ts": 5, "node": "n1"}')
    assert isinstance(event.ts, float)


def test_optional_fields_take_their_defaults() -> None:
    event = from_json('{"kind": "resource.started", "ts": 1, "resource": "web", "node": "n1"}')
    assert event == ResourceStarted(1.0, "web", "n1", "started")


def test_unknown_kind_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown event kind 'node\.exploded'.*node\.joined"):
        from_json('{"kind": "node.exploded", "ts": 1}')


def test_unknown_field_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"has no field.*colour"):
        from_json('{"kind": "node.joined", "ts": 1, "node": "n1", "colour": "red"}')


def test_missing_field_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match="needs field 'node'"):
        from_json('{"kind": "node.joined", "ts": 1}')


def test_boolean_is_not_a_timestamp() -> None:
    with pytest.raises(ConfigError, match="ts must be float"):
        from_json('{"kind": "node.joined", "ts": true, "node": "n1"}')


def test_unknown_role_is_refused() -> None:
    with pytest.raises(ConfigError, match="role 'leader'"):
        from_json(
            '{"kind": "resource.started", "ts": 1, "resource": "r", "node": "n", "role": "leader"}'
        )


def test_parse_lines_names_the_bad_line_number() -> None:
    lines = ['{"kind": "node.joined", "ts": 1, "node": "n1"}', "", "{not json"]
    with pytest.raises(ConfigError, match=r"log\.jsonl:3: not valid JSON"):
        list(parse_lines(lines, "log.jsonl"))


def test_parse_lines_skips_blank_and_comment_lines() -> None:
    lines = ["# written by hand", "", '{"kind": "node.joined", "ts": 1, "node": "n1"}']
    assert list(parse_lines(lines)) == [NodeJoined(1.0, "n1")]


def test_a_json_array_is_not_an_event() -> None:
    with pytest.raises(ConfigError, match="must be a JSON object"):
        from_json("[1, 2]")


def test_sort_keeps_log_order_for_equal_timestamps() -> None:
    stop = ResourceStopped(5.0, "db", "n1", "replica", "promote")
    start = ResourceStarted(5.0, "db", "n1", "primary")
    assert sort_events([NodeJoined(6.0, "n2"), stop, start]) == [stop, start, NodeJoined(6.0, "n2")]


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
stamps = st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False)


@given(
    ts=stamps, resource=names, node=names, role=st.sampled_from(["started", "primary", "replica"])
)
def test_any_resource_event_round_trips(ts: float, resource: str, node: str, role: str) -> None:
    event = ResourceFailed(ts, resource, node, role, "why")
    assert from_json(to_json(event)) == event
