"""systemd units: refused where systemd is not init; is-active mapping; a fake systemctl."""

from __future__ import annotations

from pathlib import Path

import pytest

from hakeeper.agents.base import OcfRc, OpRequest
from hakeeper.agents.factory import AgentContext
from hakeeper.agents.registry import BUILTIN_AGENTS
from hakeeper.agents.systemd import SystemdAgent, is_active_to_ocf, systemd_running, unit_name
from hakeeper.errors import ConfigError
from tests.agents.conftest import write_script


def test_refused_where_systemd_is_not_running(tmp_path: Path) -> None:
    if systemd_running():
        pytest.skip("systemd runs here")
    with pytest.raises(ConfigError, match="systemd is not running"):
        BUILTIN_AGENTS.make("systemd:nginx", AgentContext(instance="web", state_dir=tmp_path))


def test_unit_gets_service_suffix() -> None:
    assert unit_name("nginx") == "nginx.service"
    assert unit_name("data.mount") == "data.mount"


@pytest.mark.parametrize(
    ("rc", "state", "ocf"),
    [
        (0, "active\n", OcfRc.SUCCESS),
        (3, "inactive\n", OcfRc.NOT_RUNNING),
        (3, "failed\n", OcfRc.NOT_RUNNING),
        (3, "activating\n", OcfRc.ERR_GENERIC),
    ],
)
def test_is_active_mapping(rc: int, state: str, ocf: int) -> None:
    assert is_active_to_ocf(rc, state) == ocf


@pytest.mark.slow
async def test_fake_systemctl_round_trip(tmp_path: Path) -> None:
    flag = tmp_path / "active"
    systemctl = write_script(
        tmp_path / "systemctl",
        f"""
        case "$1" in
          start) touch {flag} ;;
          stop) rm -f {flag} ;;
          is-active) if [ -e {flag} ]; then echo active; else echo inactive; exit 3; fi ;;
        esac
        """,
    )
    agent = SystemdAgent("web", "web.service", systemctl=str(systemctl))
    req = OpRequest(timeout=30)
    assert (await agent.start(req)).rc == OcfRc.SUCCESS
    assert (await agent.monitor(req, probe=True)).rc == OcfRc.SUCCESS
    assert (await agent.stop(req)).rc == OcfRc.SUCCESS
    assert (await agent.monitor(req, probe=True)).rc == OcfRc.NOT_RUNNING


@pytest.mark.slow
async def test_a_unit_starting_with_a_dash_reaches_systemctl_after_double_dash(
    tmp_path: Path,
) -> None:
    argv = tmp_path / "argv"
    systemctl = write_script(tmp_path / "systemctl", f'printf "%s\\n" "$@" > {argv}; echo active')
    agent = SystemdAgent("root", "-.mount", systemctl=str(systemctl))
    assert (await agent.monitor(OpRequest(timeout=30), probe=True)).rc == OcfRc.SUCCESS
    assert argv.read_text().splitlines() == ["is-active", "--", "-.mount"]
