"""The command-agent base shared by the OCF, LSB and systemd agents, on a tiny shell agent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hakeeper.agents.base import MetaData, OcfRc, OpRequest, Severity
from hakeeper.agents.command import Answer, CommandAgent, check_service_spec
from hakeeper.agents.factory import AgentContext
from hakeeper.agents.runner import Completed
from hakeeper.errors import ConfigError
from tests.agents.conftest import write_script

pytestmark = pytest.mark.slow  # every test here runs a program

MONITOR = OpRequest(timeout=30, interval=5, node="n1", epoch=9)


class ShellAgent(CommandAgent):
    """Runs ``<script> <action>``; its exit code is the OCF rc; it records its argv and env."""

    monitor_action = "check"

    def __init__(self, script: Path, *, no_roles: str = "") -> None:
        self.instance = "toy"
        self.script = script
        self.no_roles = no_roles

    def meta_data(self) -> MetaData:
        return MetaData(name="toy")

    def argv(self, action: str) -> list[str]:
        return [str(self.script), action]

    def answer(self, action: str, op: str, done: Completed, req: OpRequest) -> Answer:
        return Answer(done.rc, f"{op} said {done.rc}" if done.rc else "")


@pytest.fixture
def recorder(tmp_path: Path) -> Path:
    """A program that writes its argv and epoch to ``seen`` and exits with the number in
    ``code``."""
    return write_script(
        tmp_path / "toy",
        f'echo "$* epoch=$HAKEEPER_EPOCH" > {tmp_path}/seen\nexit "$(cat {tmp_path}/code)"\n',
    )


async def test_a_probe_runs_the_monitor_action_with_interval_zero(
    tmp_path: Path, recorder: Path
) -> None:
    (tmp_path / "code").write_text("7")
    result = await ShellAgent(recorder).monitor(MONITOR, probe=True)
    assert (result.op, result.interval) == ("probe", 0.0)
    assert (result.rc, result.severity) == (OcfRc.NOT_RUNNING, Severity.OK)
    assert (tmp_path / "seen").read_text().split() == ["check", "epoch=9"]


async def test_a_recurring_monitor_keeps_its_interval_and_the_answers_reason(
    tmp_path: Path, recorder: Path
) -> None:
    (tmp_path / "code").write_text("1")
    result = await ShellAgent(recorder).monitor(MONITOR)
    assert (result.op, result.interval, result.rc) == ("monitor", 5, OcfRc.ERR_GENERIC)
    assert result.exit_reason == "monitor said 1"


async def test_a_program_that_lost_its_execute_bit_answers_insufficient_privilege(
    recorder: Path,
) -> None:
    os.chmod(recorder, 0o644)
    result = await ShellAgent(recorder).start(MONITOR)
    assert (result.rc, result.severity) == (OcfRc.ERR_PERM, Severity.HARD)
    assert result.exit_reason.startswith(f"cannot run {recorder}:")


async def test_a_program_that_is_gone_answers_not_installed(recorder: Path) -> None:
    os.unlink(recorder)
    result = await ShellAgent(recorder).stop(MONITOR)
    assert (result.rc, result.severity) == (OcfRc.ERR_INSTALLED, Severity.HARD)


async def test_a_kind_without_roles_never_runs_promote(tmp_path: Path, recorder: Path) -> None:
    result = await ShellAgent(recorder, no_roles="toys have no roles").promote(MONITOR)
    assert (result.rc, result.exit_reason) == (OcfRc.ERR_UNIMPLEMENTED, "toys have no roles")
    assert not (tmp_path / "seen").exists()


async def test_a_kind_with_roles_runs_demote(tmp_path: Path, recorder: Path) -> None:
    (tmp_path / "code").write_text("0")
    assert (await ShellAgent(recorder).demote(MONITOR)).rc == OcfRc.SUCCESS
    assert (tmp_path / "seen").read_text().split()[0] == "demote"


@pytest.mark.parametrize("target", ["", "../etc/x"])
def test_a_service_spec_without_a_plain_name_is_refused(tmp_path: Path, target: str) -> None:
    context = AgentContext(instance="web", state_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"write lsb:<script>, e\.g\. lsb:nginx"):
        check_service_spec("lsb", "script", target, context, "configure it")


def test_a_service_spec_with_parameters_is_refused_with_the_fix(tmp_path: Path) -> None:
    context = AgentContext(instance="web", params={"port": 80}, state_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"take no parameters \(got port\); use a drop-in"):
        check_service_spec("systemd", "unit", "nginx", context, "use a drop-in")
