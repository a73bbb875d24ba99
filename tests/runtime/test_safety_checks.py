"""`hakeeper check`'s findings: each unsafe setting named with its fix."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from hakeeper.cli.main import app
from hakeeper.config.loader import spec_from_text
from hakeeper.config.secret_file import write_secret_file
from hakeeper.runtime.safety_checks import safety_findings

NODES3 = """
[nodes.n1]
address = "127.0.0.11"
[nodes.n2]
address = "127.0.0.12"
[nodes.n3]
address = "127.0.0.13"
"""

SINGLETON = """
[resources.db]
agent = "process"
params = { command = "/bin/sleep 1000" }
"""

DEVICE = """
[fencing.devices.lab]
agent = "fence_hakeeper_lab"
params = { targets_dir = "/tmp" }
"""


def findings(text: str) -> list[tuple[str, str]]:
    spec = spec_from_text(text, "test")
    return [(f.level, f.what) for f in safety_findings(spec)]


def test_a_safe_cluster_has_no_findings() -> None:
    assert findings(NODES3 + SINGLETON + DEVICE) == []


def test_fencing_off_with_an_exclusive_resource_and_no_watchdog_is_an_error() -> None:
    found = findings("[cluster]\nfencing = false\n" + NODES3 + SINGLETON)
    assert [level for level, _ in found] == ["error"]
    assert "can never be proven off" in found[0][1]


def test_a_required_watchdog_makes_fencing_off_acceptable() -> None:
    text = '[cluster]\nfencing = false\n[fencing]\nwatchdog = "required"\n' + NODES3 + SINGLETON
    assert findings(text) == []


def test_an_even_number_of_members_is_a_warning() -> None:
    four = NODES3 + '[nodes.n4]\naddress = "127.0.0.14"\n'
    found = findings(four + SINGLETON + DEVICE)
    assert found == [("warning", found[0][1])]
    assert "4 coordination members" in found[0][1]


def test_a_ttl_shorter_than_etcd_grants_is_an_error() -> None:
    etcd = '[coordination]\nbackend = "etcd"\nendpoints = ["http://127.0.0.1:2379"]\n'
    found = findings('[cluster]\nprofile = "fast"\n' + etcd + NODES3 + SINGLETON + DEVICE)
    assert ("error", found[0][1]) == found[0]
    assert "shorter than etcd grants" in found[0][1]


def test_a_watchdog_with_the_fast_profile_is_an_error_that_explains_the_timing() -> None:
    text = '[cluster]\nprofile = "fast"\n[fencing]\nwatchdog = "automatic"\n' + NODES3
    found = findings(text + SINGLETON + DEVICE)
    assert len(found) == 1
    assert "whole seconds" in found[0][1]


def test_a_missing_fence_agent_is_an_error() -> None:
    text = NODES3 + SINGLETON + '[fencing.devices.x]\nagent = "fence_nosuch"\n'
    found = findings(text)
    assert found[0][0] == "error"
    assert "fence_nosuch" in found[0][1]


def test_check_command_exits_1_on_an_error_and_prints_json(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[cluster]\nfencing = false\n" + NODES3 + SINGLETON)
    result = CliRunner().invoke(app, ["check", "--config", str(path), "--json"])
    assert result.exit_code == 1
    assert '"level": "error"' in result.output


def test_check_command_exits_0_when_nothing_is_unsafe(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    write_secret_file(tmp_path / "secret")  # the security section wants a proper secret
    secret = f'[coordination]\nsecret_file = "{tmp_path / "secret"}"\n'
    path.write_text(secret + NODES3 + SINGLETON + DEVICE)
    state = ["--state-dir", str(tmp_path / "state")]
    result = CliRunner().invoke(app, ["check", "--config", str(path), *state])
    assert result.exit_code == 0
    assert "nothing unsafe found" in result.output


def test_suspicion_with_etcd_is_a_warning_that_it_does_nothing() -> None:
    etcd = '[coordination]\nbackend = "etcd"\nendpoints = ["http://127.0.0.1:2379"]\n'
    text = etcd + NODES3 + SINGLETON + DEVICE + "[fencing]\nsuspect_after = 2.0\n"
    found = findings(text)
    assert [level for level, _ in found] == ["warning"]
    assert "suspect_after has no effect with etcd" in found[0][1]


def test_suspicion_of_a_node_behind_a_fabric_fence_is_a_warning() -> None:
    fabric = '[fencing.devices.scsi]\nagent = "fence_hakeeper_lab"\nkind = "fabric"\n'
    scoped = DEVICE + 'host_list = ["n1", "n2"]\n' + fabric + 'host_list = ["n3"]\n'
    found = findings(NODES3 + SINGLETON + scoped + "[fencing]\nsuspect_after = 2.0\n")
    assert [level for level, _ in found] == ["warning"]
    assert "n3 is not fenced by power devices only" in found[0][1]
