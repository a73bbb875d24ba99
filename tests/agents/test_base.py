"""Exit code → severity (Pacemaker's recovery table), results and their log line."""

from __future__ import annotations

import logging

import pytest

from hakeeper.agents.base import (
    OcfRc,
    OpRequest,
    OpResult,
    Severity,
    classify,
    log_op,
    make_result,
    rc_name,
)

OK, SOFT, HARD, FATAL = Severity.OK, Severity.SOFT, Severity.HARD, Severity.FATAL


@pytest.mark.parametrize(
    ("rc", "severity"),
    [
        (OcfRc.SUCCESS, OK),
        (OcfRc.ERR_GENERIC, SOFT),
        (OcfRc.ERR_ARGS, HARD),
        (OcfRc.ERR_UNIMPLEMENTED, HARD),
        (OcfRc.ERR_PERM, HARD),
        (OcfRc.ERR_INSTALLED, HARD),
        (OcfRc.ERR_CONFIGURED, FATAL),
        (OcfRc.NOT_RUNNING, SOFT),
        (OcfRc.RUNNING_PROMOTED, SOFT),
        (OcfRc.FAILED_PROMOTED, SOFT),
        (OcfRc.DEGRADED, OK),
        (OcfRc.DEGRADED_PROMOTED, SOFT),
        (42, SOFT),
        (127, SOFT),
    ],
)
def test_start_exit_codes_map_to_pacemaker_recovery(rc: int, severity: Severity) -> None:
    assert classify("start", rc) is severity


@pytest.mark.parametrize(
    ("rc", "severity"),
    [
        (OcfRc.SUCCESS, OK),
        (OcfRc.NOT_RUNNING, SOFT),
        (OcfRc.RUNNING_PROMOTED, OK),
        (OcfRc.DEGRADED_PROMOTED, OK),
        (OcfRc.FAILED_PROMOTED, SOFT),
        (OcfRc.ERR_CONFIGURED, FATAL),
    ],
)
def test_recurring_monitor_exit_codes(rc: int, severity: Severity) -> None:
    assert classify("monitor", rc, recurring=True) is severity


def test_recurring_monitor_unimplemented_causes_no_recovery() -> None:
    assert classify("monitor", OcfRc.ERR_UNIMPLEMENTED, recurring=True) is OK


def test_one_off_unimplemented_is_hard() -> None:
    assert classify("demote", OcfRc.ERR_UNIMPLEMENTED) is HARD


def test_probe_finding_nothing_is_ok() -> None:
    assert classify("probe", OcfRc.NOT_RUNNING) is OK


@pytest.mark.parametrize("rc", [OcfRc.ERR_ARGS, OcfRc.ERR_INSTALLED])
def test_probe_not_installed_bans_node(rc: int) -> None:
    assert classify("probe", rc) is HARD


def test_stop_of_stopped_resource_is_ok() -> None:
    assert classify("stop", OcfRc.NOT_RUNNING) is OK


def test_unknown_rc_has_a_readable_name() -> None:
    assert rc_name(127) == "rc127"
    assert rc_name(8) == "RUNNING_PROMOTED"


def test_timeout_result_is_generic_error_and_soft() -> None:
    result = make_result("start", 0, started=0.0, resource="web", timed_out=True)
    assert (result.rc, result.severity, result.timed_out) == (OcfRc.ERR_GENERIC, SOFT, True)


def test_describe_is_one_line_with_reason() -> None:
    result = OpResult(
        op="start", rc=5, severity=HARD, duration=0.25, exit_reason="no binary", resource="db"
    )
    text = result.describe()
    assert "\n" not in text
    assert text == "start db: ERR_INSTALLED (5, hard) in 0.25s: no binary"


def test_describe_says_timed_out() -> None:
    result = OpResult(op="stop", rc=1, severity=SOFT, duration=20.0, timed_out=True)
    assert result.describe() == "stop: timed out after 20.0s (soft)"


def test_result_running_and_promoted_flags() -> None:
    promoted = OpResult(op="monitor", rc=8, severity=OK, duration=0.0)
    stopped = OpResult(op="probe", rc=7, severity=OK, duration=0.0)
    assert promoted.running
    assert promoted.promoted
    assert not stopped.running
    assert not stopped.promoted


def test_request_rejects_nonpositive_timeout() -> None:
    with pytest.raises(ValueError, match="timeout"):
        OpRequest(timeout=0)


def test_log_line_is_key_value(caplog: pytest.LogCaptureFixture) -> None:
    result = OpResult(
        op="start", rc=1, severity=SOFT, duration=0.0123, exit_reason='bad "x"', resource="web"
    )
    with caplog.at_level(logging.INFO, logger="hakeeper.agents"):
        log_op(result, node="n1", epoch=9)
    line = caplog.records[-1].getMessage()
    assert line.startswith("event=op resource=web op=start rc=1 ")
    assert "duration_ms=12" in line
    assert "node=n1 epoch=9" in line
    assert 'reason="bad \\"x\\""' in line
    assert caplog.records[-1].levelno == logging.WARNING
