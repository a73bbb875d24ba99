"""LSB init scripts, with a tiny script in a test init.d directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from hakeeper.agents.base import OcfRc, OpRequest, Severity
from hakeeper.agents.factory import AgentContext
from hakeeper.agents.lsb import lsb_to_ocf
from hakeeper.agents.registry import BUILTIN_AGENTS
from hakeeper.errors import ConfigError
from tests.agents.conftest import write_script

REQ = OpRequest(timeout=30)
MONITOR = OpRequest(timeout=30, interval=5)


@pytest.fixture
def init_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "init.d"
    flag = tmp_path / "running"
    write_script(
        directory / "toy",
        f"""
        case "$1" in
          start) touch {flag} ;;
          stop) rm -f {flag} ;;
          status) [ -e {flag} ] && exit 0 || exit 3 ;;
          *) exit 3 ;;
        esac
        """,
    )
    return directory


@pytest.mark.slow
async def test_lsb_start_status_stop(tmp_path: Path, init_dir: Path) -> None:
    agent = BUILTIN_AGENTS.make(
        "lsb:toy", AgentContext(instance="toy", state_dir=tmp_path, init_dir=init_dir)
    )
    assert (await agent.monitor(REQ, probe=True)).rc == OcfRc.NOT_RUNNING
    assert (await agent.start(REQ)).rc == OcfRc.SUCCESS
    assert (await agent.monitor(MONITOR)).rc == OcfRc.SUCCESS
    assert (await agent.stop(REQ)).rc == OcfRc.SUCCESS
    stopped = await agent.monitor(MONITOR)
    assert (stopped.rc, stopped.severity) == (OcfRc.NOT_RUNNING, Severity.SOFT)


@pytest.mark.parametrize(
    ("code", "rc"),
    [
        (0, OcfRc.SUCCESS),
        (1, OcfRc.NOT_RUNNING),
        (2, OcfRc.NOT_RUNNING),
        (3, OcfRc.NOT_RUNNING),
        (4, OcfRc.ERR_GENERIC),
        (150, OcfRc.ERR_INSTALLED),
    ],
)
def test_lsb_status_codes(code: int, rc: int) -> None:
    assert lsb_to_ocf("status", code) == rc


def test_lsb_start_codes_share_ocf_meaning_up_to_seven() -> None:
    assert lsb_to_ocf("start", 5) == OcfRc.ERR_INSTALLED
    assert lsb_to_ocf("start", 8) == OcfRc.ERR_GENERIC


def test_missing_init_script_is_a_config_error(tmp_path: Path, init_dir: Path) -> None:
    with pytest.raises(ConfigError, match=str(init_dir / "nginx")):
        BUILTIN_AGENTS.make(
            "lsb:nginx", AgentContext(instance="web", state_dir=tmp_path, init_dir=init_dir)
        )
