"""Events as alerts: Pacemaker's CRM_alert_* environment, which its own sample agents read."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from hakeeper.config.loader import spec_from_text
from hakeeper.model.alerts import ALERT_KINDS
from hakeeper.model.events import (
    AlertDelivered,
    ConfigRefused,
    ControllerElected,
    Event,
    FailoverFinished,
    FailoverStarted,
    JobFailed,
    JobOverdue,
    NodeFenced,
    NodeJoined,
    NodeLost,
    QuorumLost,
    QuorumRegained,
    ResourceFailed,
    ResourceStarted,
    ResourceStopped,
)
from hakeeper.runtime.alert_env import (
    agent_environment,
    format_timestamp,
    notice_of,
    webhook_document,
)
from tests.conftest import require_file

SAMPLES = Path("/usr/share/pacemaker/alerts")
SPEC = spec_from_text(
    '[nodes.n1]\naddress = "127.0.0.1"\n[nodes.n2]\naddress = "127.0.0.2"\n', "test"
)
TS = 1_700_000_000.123456

ONE_OF_EACH: list[Event] = [
    NodeJoined(TS, "n1"),
    NodeLost(TS, "n2", "lease_expired"),
    NodeFenced(TS, "n2", "ipmi", 6.5),
    ResourceStarted(TS, "db", "n1", "primary"),
    ResourceStopped(TS, "db", "n1", "started", "move"),
    ResourceFailed(TS, "web", "n1", "started", "monitor web: not running (7, soft) in 0.01s"),
    FailoverStarted(TS, "db", "n2", "node lost"),
    FailoverFinished(TS, "db", "n2", "n1", 9.25),
    QuorumLost(TS, 1, 3),
    QuorumRegained(TS, 2, 3),
    ControllerElected(TS, "n1", 42),
    ConfigRefused(TS, "n2", 77, "stored config rev 77: not UTF-8"),
    JobFailed(TS, "backup", "StoreUnavailable: /var/backups: disk full"),
    JobOverdue(TS, "backup", 7300.0),
]


def env_of(event: Event, recipient: str = "/tmp/x", **params: str) -> dict[str, str]:
    notice = notice_of(event, 100, SPEC, "n1")
    assert notice is not None
    return agent_environment(
        notice, recipient=recipient, timestamp_format="%H:%M:%S.%06N", params=params
    )


def test_every_operator_kind_has_a_case_here() -> None:
    assert {e.kind for e in ONE_OF_EACH} == set(ALERT_KINDS)


def test_a_lost_node_is_a_node_alert_with_its_id_and_the_common_fields() -> None:
    env = env_of(NodeLost(TS, "n2", "lease_expired"))

    assert env["CRM_alert_kind"] == "node"
    assert env["CRM_alert_node"] == "n2"
    assert env["CRM_alert_nodeid"] == "2"
    assert env["CRM_alert_desc"] == "lost (lease_expired)"
    assert env["CRM_alert_node_sequence"] == "100"
    assert env["CRM_alert_recipient"] == "/tmp/x"
    assert env["CRM_alert_timestamp_epoch"] == "1700000000"
    assert env["CRM_alert_timestamp_usec"] == "123456"
    assert env["CRM_alert_version"]
    # ClusterMon's older names carry the same values.
    assert env["CRM_notify_node"] == "n2"
    # Only the fields of its kind: the samples default the others themselves.
    assert "CRM_alert_rsc" not in env


def test_a_failed_monitor_is_a_resource_alert_with_the_agents_rc() -> None:
    env = env_of(ONE_OF_EACH[5])

    assert env["CRM_alert_kind"] == "resource"
    assert (env["CRM_alert_rsc"], env["CRM_alert_task"]) == ("web", "monitor")
    assert (env["CRM_alert_rc"], env["CRM_alert_target_rc"]) == ("7", "0")
    assert env["CRM_alert_interval"] == "0"


def test_quorum_goes_out_as_an_attribute_alert() -> None:
    env = env_of(QuorumLost(TS, 1, 3))

    assert env["CRM_alert_kind"] == "attribute"
    assert env["CRM_alert_attribute_name"] == "quorum"
    assert env["CRM_alert_attribute_value"] == "lost (1 of 3 members)"


def test_an_alerts_own_record_is_never_alerted_on() -> None:
    assert notice_of(AlertDelivered(TS, "mail", "node.lost", 3), 4, SPEC, "n1") is None


def test_no_recipient_sets_none_and_params_become_variables() -> None:
    env = env_of(NodeJoined(TS, "n1"), recipient="", debug_exec_order="true")

    assert "CRM_alert_recipient" not in env
    assert env["debug_exec_order"] == "true"


def test_the_nodes_pacemaker_tools_come_first_on_the_agents_path() -> None:
    notice = notice_of(NodeJoined(TS, "n1"), 100, SPEC, "n1")
    assert notice is not None
    env = agent_environment(
        notice, recipient="", timestamp_format="%s", params={}, tools_dir="/var/lib/hk/crm-tools"
    )
    assert env["PATH"].split(":")[:3] == [
        "/var/lib/hk/crm-tools",
        "/usr/local/sbin",
        "/usr/local/bin",
    ]
    assert env_of(NodeJoined(TS, "n1"))["PATH"].startswith("/usr/local/sbin:")


def test_control_characters_in_a_reason_reach_no_agent() -> None:
    env = env_of(ConfigRefused(TS, "n2", 7, "bad\nline\x1b[31m"))

    assert all(v.isprintable() for v in env.values())


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("%06N", "123456"), ("%3N", "123"), ("%N", "123456"), ("%%N", "%N"), ("%S", None)],
)
def test_timestamp_formats_take_pacemakers_fractions(fmt: str, expected: str | None) -> None:
    got = format_timestamp(fmt, TS)
    if expected is None:
        assert got == time.strftime("%S", time.localtime(TS))
    else:
        # %N is nanoseconds: nine digits, the last ones below a float's precision here.
        assert got[: len(expected)] == expected
        assert len(got) == (9 if fmt == "%N" else len(expected))


def test_the_webhook_document_holds_the_event_and_the_same_fields() -> None:
    notice = notice_of(FailoverFinished(TS, "db", "n2", "n1", 9.25), 9, SPEC, "n1")
    assert notice is not None

    doc = webhook_document(notice, cluster="c1", alert="hook")

    assert doc["revision"] == 9
    assert doc["event"] == {
        "kind": "failover.finished", "ts": TS, "resource": "db", "from_node": "n2",
        "to_node": "n1", "duration": 9.25,
    }  # fmt: skip
    assert doc["fields"] == dict(notice.fields)


def run_sample(name: str, env: dict[str, str]) -> None:
    subprocess.run([str(SAMPLES / name)], env=env, check=True, timeout=30, cwd="/")


def test_pacemakers_file_sample_writes_one_line_for_every_kind(tmp_path: Path) -> None:
    require_file(SAMPLES / "alert_file.sh.sample")
    out = tmp_path / "alerts.log"
    for event in ONE_OF_EACH:
        run_sample("alert_file.sh.sample", env_of(event, str(out)))

    lines = out.read_text().splitlines()
    assert len(lines) == len(ONE_OF_EACH)
    assert not [line for line in lines if "Unhandled" in line]
    assert "Node 'n2' is now 'lost (lease_expired)'" in lines[1]
    assert "Resource operation 'failover' for 'db' on 'n1': moved from n2 in 9.2s" in lines[7]


def test_pacemakers_snmp_sample_sends_its_trap_for_a_fencing(tmp_path: Path) -> None:
    require_file(SAMPLES / "alert_snmp.sh.sample")
    trap = tmp_path / "snmptrap"
    calls = tmp_path / "calls"
    trap.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {calls}\n')
    os.chmod(trap, 0o755)
    env = env_of(
        NodeFenced(TS, "n2", "ipmi", 6.5), "192.0.2.1",
        trap_binary=str(trap), trap_snmp_persistent_dir=str(tmp_path / "snmp"),
    )  # fmt: skip

    run_sample("alert_snmp.sh.sample", env)

    args = calls.read_text().splitlines()
    assert "192.0.2.1" in args
    assert "Operation off of n2 by ipmi: OK in 6.5s" in args


def test_a_failed_backup_is_an_attribute_alert_naming_the_job_and_why() -> None:
    env = env_of(JobFailed(TS, "backup", "StoreUnavailable: /var/backups: disk full"))
    assert env["CRM_alert_kind"] == "attribute"
    assert env["CRM_alert_attribute_name"] == "backup"
    assert env["CRM_alert_attribute_value"] == ("failed: StoreUnavailable: /var/backups: disk full")
