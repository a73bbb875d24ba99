"""OpResult → event-log records."""

from __future__ import annotations

from hakeeper.agents.base import OpResult, Severity
from hakeeper.agents.events import op_events
from hakeeper.model.events import ResourceFailed, ResourceStarted, ResourceStopped


def _result(op: str, rc: int, severity: Severity, interval: float = 0.0) -> OpResult:
    return OpResult(
        op=op, rc=rc, severity=severity, duration=0.1, resource="db", interval=interval, ts=100.0
    )


def test_successful_start_is_started() -> None:
    assert op_events(_result("start", 0, Severity.OK), node="n1") == [
        ResourceStarted(ts=100.0, resource="db", node="n1", role="started")
    ]


def test_failed_start_is_failed_with_description() -> None:
    (event,) = op_events(_result("start", 5, Severity.HARD), node="n1")
    assert isinstance(event, ResourceFailed)
    assert event.reason == "start db: ERR_INSTALLED (5, hard) in 0.10s"


def test_stop_carries_reason() -> None:
    assert op_events(_result("stop", 0, Severity.OK), node="n1", reason="move") == [
        ResourceStopped(ts=100.0, resource="db", node="n1", role="started", reason="move")
    ]


def test_failed_stop_writes_nothing() -> None:
    assert op_events(_result("stop", 1, Severity.SOFT), node="n1") == []


def test_promote_is_stopped_replica_then_started_primary() -> None:
    assert op_events(_result("promote", 0, Severity.OK), node="n1", role="replica") == [
        ResourceStopped(ts=100.0, resource="db", node="n1", role="replica", reason="promote"),
        ResourceStarted(ts=100.0, resource="db", node="n1", role="primary"),
    ]


def test_failed_recurring_monitor_is_failed() -> None:
    (event,) = op_events(_result("monitor", 7, Severity.SOFT, interval=10), node="n1")
    assert isinstance(event, ResourceFailed)


def test_probes_and_good_monitors_write_nothing() -> None:
    assert op_events(_result("probe", 0, Severity.OK), node="n1") == []
    assert op_events(_result("monitor", 0, Severity.OK, interval=10), node="n1") == []
