"""The OCF environment of one action, and exit-reason parsing (pure)."""

from __future__ import annotations

from pathlib import Path

from hakeeper.agents.base import OpRequest
from hakeeper.agents.ocf import build_ocf_env
from hakeeper.agents.runner import Completed, parse_exit_reason


def _env(**overrides: object) -> dict[str, str]:
    args: dict[str, object] = {
        "ocf_root": Path("/usr/lib/ocf"),
        "provider": "heartbeat",
        "type_": "Dummy",
        "instance": "db",
        "params": {"state": "/tmp/s"},
        "meta": {"clone-max": "3"},
        "action": "monitor",
        "req": OpRequest(timeout=20, interval=10, node="n1", epoch=42, check_level=10),
        "base": {"PATH": "/bin", "OCF_RESKEY_leak": "x", "HAKEEPER_EPOCH": "1"},
    }
    args.update(overrides)
    return build_ocf_env(**args)  # type: ignore[arg-type]


def test_standard_ocf_variables() -> None:
    env = _env()
    assert env["OCF_ROOT"] == "/usr/lib/ocf"
    assert (env["OCF_RA_VERSION_MAJOR"], env["OCF_RA_VERSION_MINOR"]) == ("1", "1")
    assert env["OCF_RESOURCE_INSTANCE"] == "db"
    assert env["OCF_RESOURCE_TYPE"] == "Dummy"
    assert env["OCF_RESOURCE_PROVIDER"] == "heartbeat"
    assert env["OCF_CHECK_LEVEL"] == "10"
    assert env["OCF_EXIT_REASON_PREFIX"] == "ocf-exit-reason:"


def test_params_become_reskey() -> None:
    assert _env()["OCF_RESKEY_state"] == "/tmp/s"


def test_meta_in_milliseconds_with_op_name_and_node() -> None:
    env = _env()
    assert env["OCF_RESKEY_CRM_meta_interval"] == "10000"
    assert env["OCF_RESKEY_CRM_meta_timeout"] == "20000"
    assert env["OCF_RESKEY_CRM_meta_name"] == "monitor"
    assert env["OCF_RESKEY_CRM_meta_on_node"] == "n1"


def test_meta_dashes_become_underscores() -> None:
    assert _env()["OCF_RESKEY_CRM_meta_clone_max"] == "3"


def test_epoch_in_both_variables() -> None:
    env = _env()
    assert env["HAKEEPER_EPOCH"] == "42"
    assert env["OCF_RESKEY_CRM_meta_hakeeper_epoch"] == "42"


def test_parent_ocf_variables_do_not_leak() -> None:
    env = _env()
    assert "OCF_RESKEY_leak" not in env
    assert env["PATH"] == "/bin"


def test_probe_has_interval_zero() -> None:
    env = _env(req=OpRequest(timeout=5))
    assert env["OCF_RESKEY_CRM_meta_interval"] == "0"
    assert "OCF_RESKEY_CRM_meta_on_node" not in env


def test_exit_reason_first_occurrence_to_end_of_line() -> None:
    stderr = "noise\nocf-exit-reason:Config file /x missing  \nocf-exit-reason:second\n"
    assert parse_exit_reason(stderr) == "Config file /x missing"


def test_no_exit_reason_is_empty() -> None:
    assert parse_exit_reason("ERROR: something\n") == ""


def test_exit_reason_is_bounded() -> None:
    assert len(parse_exit_reason("ocf-exit-reason:" + "x" * 5000)) == 256


def test_output_tail_drops_reason_lines_and_keeps_last() -> None:
    done = Completed(
        rc=1,
        stdout="\n".join(f"out{i}" for i in range(30)),
        stderr="ocf-exit-reason:why\nerr",
        duration=0.0,
        timed_out=False,
        pgid=1,
    )
    tail = done.output_tail(3).splitlines()
    assert tail == ["out28", "out29", "err"]
