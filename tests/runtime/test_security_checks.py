"""`hakeeper check`'s security section: each insecure setting named, its fix a command that
runs as printed (the tests run it, then check again)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hakeeper.cli.check import SECURITY_SOURCES, CheckContext, all_findings
from hakeeper.cli.main import app
from hakeeper.config.loader import spec_from_text
from hakeeper.config.secret_file import write_secret_file
from hakeeper.model.cluster import ClusterSpec
from hakeeper.runtime.safety_checks import Finding
from hakeeper.runtime.security_checks import (
    alert_findings,
    etcd_findings,
    fence_password_findings,
    secret_findings,
    state_findings,
)

EXAMPLE = Path(__file__).parents[2] / "examples" / "cluster" / "cluster.toml"
NODES = '[nodes.n1]\naddress = "10.0.0.1"\n'


def spec_with_secret(path: Path) -> ClusterSpec:
    return spec_from_text(f'[coordination]\nsecret_file = "{path}"\n{NODES}', "test")


def etcd(lines: str) -> ClusterSpec:
    return spec_from_text(f'[coordination]\nbackend = "etcd"\n{lines}\n{NODES}', "test")


def run_fix(finding: Finding) -> None:
    subprocess.run(["sh", "-c", finding.fix], check=True, timeout=30)


def test_a_missing_secret_is_an_error_whose_fix_creates_a_good_one(tmp_path: Path) -> None:
    spec = spec_with_secret(tmp_path / "etc" / "secret")
    [found] = secret_findings(spec)
    assert found.level == "error"
    assert "does not exist" in found.what
    run_fix(found)
    assert secret_findings(spec) == []


def test_a_secret_others_can_read_is_an_error_fixed_by_chmod(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    write_secret_file(path)
    path.chmod(0o644)
    [found] = secret_findings(spec_with_secret(path))
    assert "lets group or others read it" in found.what
    assert found.fix == f"chmod 600 {path}"
    run_fix(found)
    assert secret_findings(spec_with_secret(path)) == []


def test_a_malformed_secret_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("short\n")
    path.chmod(0o600)
    [found] = secret_findings(spec_with_secret(path))
    assert "at least 16 bytes" in found.what


def test_state_others_can_read_is_an_error_fixed_by_chmod(tmp_path: Path) -> None:
    journal = tmp_path / "state" / "n1" / "raft" / "raft.journal"
    journal.parent.mkdir(parents=True)
    journal.write_text("the key space")
    journal.chmod(0o644)
    [found] = state_findings(tmp_path / "state")
    assert str(journal) in found.what
    run_fix(found)
    assert state_findings(tmp_path / "state") == []


def test_a_state_dir_not_made_yet_is_no_finding(tmp_path: Path) -> None:
    assert state_findings(tmp_path / "none") == []


@pytest.mark.parametrize(
    ("endpoints", "insecure"),
    [
        ('["http://10.0.0.5:2379"]', True),
        ('["10.0.0.5:2379"]', True),
        ('["https://10.0.0.5:2379"]', False),
        ('["http://127.0.0.1:2379"]', False),
        ('["http://localhost:2379"]', False),
        ('["http://[::1]:2379"]', False),
    ],
)
def test_etcd_without_tls_beyond_loopback_is_an_error(endpoints: str, insecure: bool) -> None:
    spec = etcd(f'endpoints = {endpoints}\nuser = "hk"\npassword_file = "/nonexistent/pw"')
    errors = [f for f in etcd_findings(spec) if "use http (no TLS)" in f.what]
    assert bool(errors) is insecure
    assert all(f.level == "error" for f in errors)


def test_a_remote_etcd_without_client_certificate_and_user_is_an_error_for_each() -> None:
    found = etcd_findings(etcd('endpoints = ["https://10.0.0.5:2379"]'))
    assert [f.level for f in found] == ["error", "error"]
    assert "no client certificate" in found[0].what
    assert "no user" in found[1].what
    assert "etcdctl auth enable" in found[1].fix


def test_an_etcd_password_file_others_can_read_is_an_error(tmp_path: Path) -> None:
    password = tmp_path / "pw"
    password.write_text("pw\n")
    password.chmod(0o640)
    spec = etcd(f'endpoints = ["https://10.0.0.5:2379"]\nuser = "hk"\npassword_file = "{password}"')
    found = [f for f in etcd_findings(spec) if "password_file" in f.what]
    assert [f.fix for f in found] == [f"chmod 600 {password}"]


def test_the_shipped_example_with_a_proper_secret_reports_nothing_insecure(tmp_path: Path) -> None:
    write_secret_file(tmp_path / "secret")
    text = EXAMPLE.read_text().replace('"/etc/hakeeper/secret"', f'"{tmp_path / "secret"}"', 1)
    assert str(tmp_path / "secret") in text
    config = tmp_path / "cluster.toml"
    config.write_text(text)
    found = all_findings(str(config), tmp_path / "state")
    assert [s for s in found if s.name == "security"] == []


def test_check_prints_security_findings_as_json_with_their_section(tmp_path: Path) -> None:
    config = tmp_path / "cluster.toml"
    config.write_text(f'[coordination]\nsecret_file = "{tmp_path / "missing"}"\n{NODES}')
    state = ["--state-dir", str(tmp_path / "state")]
    result = CliRunner().invoke(app, ["check", "--config", str(config), "--json", *state])
    assert result.exit_code == 1
    security = [f for f in json.loads(result.output) if f["section"] == "security"]
    assert [f["level"] for f in security] == ["error"]
    assert "does not exist" in security[0]["what"]


def test_another_source_plugs_into_the_security_section(tmp_path: Path) -> None:
    write_secret_file(tmp_path / "secret")
    config = tmp_path / "cluster.toml"
    config.write_text(f'[coordination]\nsecret_file = "{tmp_path / "secret"}"\n{NODES}')

    def balancer(ctx: CheckContext) -> list[Finding]:
        return [Finding("warning", f"api of {ctx.spec.options.name} bound beyond loopback", "x")]

    found = all_findings(str(config), tmp_path / "state", (*SECURITY_SOURCES, balancer))
    assert [(s.name, s.finding.what) for s in found if s.name == "security"] == [
        ("security", "api of hakeeper bound beyond loopback")
    ]


def test_an_inline_fence_password_is_a_warning_pointing_at_passwd_script() -> None:
    device = '[fencing.devices.ipmi]\nagent = "fence_ipmilan"\nparams = { passwd = "pw" }\n'
    [found] = fence_password_findings(spec_from_text(NODES + device, "test"))
    assert found.level == "warning"
    assert "fencing.devices.ipmi.params.passwd" in found.what
    assert "passwd_script" in found.fix
    assert "pw" not in found.what.replace("passwd", "")


def test_a_fence_passwd_script_is_no_finding() -> None:
    device = '[fencing.devices.ipmi]\nagent = "fence_ipmilan"\nparams = { passwd_script = "/x" }\n'
    assert fence_password_findings(spec_from_text(NODES + device, "test")) == []


def test_a_secret_of_another_owner_is_never_given_to_the_checking_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_secret_file(tmp_path / "secret")
    owner = (tmp_path / "secret").stat().st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1000)  # check as another user
    [found] = secret_findings(spec_with_secret(tmp_path / "secret"))
    assert found.level == "warning"
    assert f"belongs to uid {owner}" in found.what
    assert "chown" not in found.fix


def test_a_balancer_api_without_a_token_is_named_with_its_fix(tmp_path: Path) -> None:
    lb = tmp_path / "lb.toml"
    lb.write_text(
        '[[frontend]]\nname = "fe"\nbind = "127.0.0.1:8080"\nbackend = "be"\n'
        '[[backend]]\nname = "be"\nservers = [{ name = "a", address = "127.0.0.1:8081" }]\n'
        '[api]\nbind = "127.0.0.1:9900"\n'
    )
    write_secret_file(tmp_path / "secret")
    config = tmp_path / "cluster.toml"
    config.write_text(
        f'[coordination]\nsecret_file = "{tmp_path / "secret"}"\n{NODES}'
        f'[resources.lb]\nagent = "balancer"\nparams = {{ config = "{lb}" }}\n'
    )
    found = [s.finding for s in all_findings(str(config), tmp_path / "state")]
    assert [f.level for f in found if f.what.startswith("balancer lb")] == ["warning"]
    (finding,) = [f for f in found if f.what.startswith("balancer lb")]
    assert "no token_hash" in finding.what
    assert finding.fix.startswith("`hakeeper lb token --file")


def alerts_spec(entry: str) -> ClusterSpec:
    return spec_from_text(f'{NODES}\n[[alerts]]\nid = "a"\n{entry}\n', "test")


def test_an_alert_agent_that_is_not_executable_here_is_an_error(tmp_path: Path) -> None:
    (found,) = alert_findings(alerts_spec(f'agent = "{tmp_path}/missing.sh"'))

    assert found.level == "error"
    assert "not an executable file" in found.what


def test_an_open_webhook_key_is_an_error_whose_fix_runs(tmp_path: Path) -> None:
    key = tmp_path / "hook.key"
    key.write_text("0123456789abcdef0123456789abcdef\n")
    key.chmod(0o644)
    spec = alerts_spec(f'webhook = "https://hooks.example.org/x"\nsecret_file = "{key}"')

    (found,) = alert_findings(spec)
    run_fix(found)

    assert found.level == "error"
    assert alert_findings(spec) == []


def test_a_webhook_over_plain_http_beyond_loopback_is_a_warning(tmp_path: Path) -> None:
    key = tmp_path / "hook.key"
    write_secret_file(key)
    remote = alerts_spec(f'webhook = "http://10.0.0.9/x"\nsecret_file = "{key}"')
    local = alerts_spec(f'webhook = "http://127.0.0.1:8000/x"\nsecret_file = "{key}"')

    assert [f.level for f in alert_findings(remote)] == ["warning"]
    assert alert_findings(local) == []
