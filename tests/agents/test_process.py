"""The ``process`` agent: real commands started, probed, health-checked and stopped."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from hakeeper.agents.base import OcfRc, OpRequest, Severity
from hakeeper.agents.factory import AgentContext
from hakeeper.agents.process import ProcessAgent
from hakeeper.agents.procfs import process_start_time
from hakeeper.agents.registry import BUILTIN_AGENTS
from hakeeper.errors import ConfigError
from hakeeper.lab.processes import free_port
from tests.agents.conftest import group_gone, wait_until

REQ = OpRequest(timeout=30, node="n1", epoch=5)
MONITOR = OpRequest(timeout=30, interval=5)

SLEEPER = [sys.executable, "-c", "import time; time.sleep(300)"]
_STUBBORN_CODE = (
    "import signal, sys, time\n"
    "def on_term(*_):\n"
    "    print('got TERM, ignoring it', flush=True)\n"
    "signal.signal(signal.SIGTERM, on_term)\n"
    "print('ready', flush=True)\n"
    "while True:\n"
    "    time.sleep(1)\n"
)
# argv carries no control characters (a newline is refused): the program goes in escaped.
STUBBORN = [sys.executable, "-c", f"exec({_STUBBORN_CODE!r})"]


def _agent(tmp_path: Path, params: dict[str, object], name: str = "app") -> ProcessAgent:
    agent = BUILTIN_AGENTS.make(
        "process", AgentContext(instance=name, params=params, state_dir=tmp_path / "state")
    )
    assert isinstance(agent, ProcessAgent)
    return agent


def _track(agent: ProcessAgent, kill_groups: list[int]) -> int:
    running = agent.recorded()
    assert running is not None, "start should have written the state file"
    kill_groups.append(running.pid)
    return running.pid


@pytest.mark.slow
async def test_http_server_start_monitor_stop_with_health_url(
    tmp_path: Path, kill_groups: list[int]
) -> None:
    port = free_port()
    agent = _agent(
        tmp_path,
        {
            "command": f"{sys.executable} -m http.server --bind 127.0.0.1 {port}",
            "cwd": str(tmp_path),
            "health_url": f"http://127.0.0.1:{port}/",
        },
    )
    started = await agent.start(REQ)
    pid = _track(agent, kill_groups)
    assert (started.rc, started.severity) == (OcfRc.SUCCESS, Severity.OK), started.describe()
    assert (await agent.monitor(MONITOR)).rc == OcfRc.SUCCESS
    stopped = await agent.stop(REQ)
    assert stopped.rc == OcfRc.SUCCESS
    assert group_gone(pid)
    assert (await agent.monitor(MONITOR)).rc == OcfRc.NOT_RUNNING


@pytest.mark.slow
async def test_start_is_idempotent(tmp_path: Path, kill_groups: list[int]) -> None:
    agent = _agent(tmp_path, {"command": SLEEPER})
    assert (await agent.start(REQ)).rc == OcfRc.SUCCESS
    pid = _track(agent, kill_groups)
    assert (await agent.start(REQ)).rc == OcfRc.SUCCESS
    running = agent.recorded()
    assert running is not None
    assert running.pid == pid, "a second start must not start another"
    await agent.stop(REQ)


@pytest.mark.slow
async def test_stop_of_stopped_resource_succeeds(tmp_path: Path) -> None:
    agent = _agent(tmp_path, {"command": SLEEPER})
    assert (await agent.stop(REQ)).rc == OcfRc.SUCCESS


@pytest.mark.slow
async def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(
    tmp_path: Path, kill_groups: list[int]
) -> None:
    agent = _agent(tmp_path, {"command": STUBBORN, "stop_timeout": "1s"})
    assert (await agent.start(REQ)).rc == OcfRc.SUCCESS
    pid = _track(agent, kill_groups)
    assert wait_until(lambda: "ready" in agent.log_file.read_text())
    stopped = await agent.stop(REQ)
    assert stopped.rc == OcfRc.SUCCESS, stopped.describe()
    assert group_gone(pid)
    assert "got TERM, ignoring it" in agent.log_file.read_text(), "SIGTERM must come first"


@pytest.mark.slow
async def test_probe_after_restart_finds_the_running_process(
    tmp_path: Path, kill_groups: list[int]
) -> None:
    first = _agent(tmp_path, {"command": SLEEPER})
    assert (await first.start(REQ)).rc == OcfRc.SUCCESS
    pid = _track(first, kill_groups)

    restarted = _agent(tmp_path, {"command": SLEEPER})  # a new hakeeper agent, same state dir
    probe = await restarted.monitor(REQ, probe=True)
    assert (probe.op, probe.rc, probe.running) == ("probe", OcfRc.SUCCESS, True)
    assert (await restarted.stop(REQ)).rc == OcfRc.SUCCESS
    assert group_gone(pid)


@pytest.mark.slow
async def test_reused_pid_with_other_start_time_is_not_running(tmp_path: Path) -> None:
    agent = _agent(tmp_path, {"command": SLEEPER})
    me = os.getpid()  # alive, but not what the state file says was started
    real_start = process_start_time(me)
    assert real_start is not None
    agent.state_dir.mkdir(parents=True)
    agent.state_file.write_text(
        json.dumps({"pid": me, "start_time": real_start - 1, "argv": SLEEPER})
    )
    probe = await agent.monitor(REQ, probe=True)
    assert (probe.rc, probe.severity) == (OcfRc.NOT_RUNNING, Severity.OK)
    assert (await agent.stop(REQ)).rc == OcfRc.SUCCESS  # and it must not signal us
    assert not agent.state_file.exists()


@pytest.mark.slow
async def test_monitor_reports_failed_health_check(tmp_path: Path, kill_groups: list[int]) -> None:
    flag = tmp_path / "healthy"
    flag.touch()
    agent = _agent(tmp_path, {"command": SLEEPER, "health_command": f"test -e {flag}"})
    assert (await agent.start(REQ)).rc == OcfRc.SUCCESS
    _track(agent, kill_groups)
    flag.unlink()
    result = await agent.monitor(MONITOR)
    assert (result.rc, result.severity) == (OcfRc.ERR_GENERIC, Severity.SOFT)
    assert "health command exited 1" in result.exit_reason
    await agent.stop(REQ)


@pytest.mark.slow
async def test_start_never_healthy_times_out_and_leaves_nothing(
    tmp_path: Path, kill_groups: list[int]
) -> None:
    port = free_port()  # nothing listens there
    agent = _agent(tmp_path, {"command": SLEEPER, "health_url": f"http://127.0.0.1:{port}/"})
    result = await agent.start(OpRequest(timeout=2))
    assert result.timed_out
    assert result.rc == OcfRc.ERR_GENERIC
    assert "not healthy" in result.exit_reason
    assert agent.recorded() is None
    assert (await agent.monitor(MONITOR)).rc == OcfRc.NOT_RUNNING


@pytest.mark.slow
async def test_command_that_exits_at_once_fails_start(tmp_path: Path) -> None:
    agent = _agent(tmp_path, {"command": [sys.executable, "-c", "print('bye'); exit(3)"]})
    result = await agent.start(REQ)
    assert (result.rc, result.severity) == (OcfRc.ERR_GENERIC, Severity.SOFT)
    assert "code 3" in result.exit_reason
    assert "bye" in result.output_tail


@pytest.mark.slow
async def test_missing_program_is_not_installed(tmp_path: Path) -> None:
    agent = _agent(tmp_path, {"command": "/nonexistent/program --flag"})
    result = await agent.start(REQ)
    assert (result.rc, result.severity) == (OcfRc.ERR_INSTALLED, Severity.HARD)
    assert "/nonexistent/program" in result.exit_reason


@pytest.mark.slow
async def test_child_sees_epoch_and_env(tmp_path: Path, kill_groups: list[int]) -> None:
    out = tmp_path / "env.txt"
    agent = _agent(
        tmp_path,
        {
            "command": [
                "/bin/sh",
                "-c",
                f'echo "$HAKEEPER_EPOCH $GREETING" > {out}; exec sleep 300',
            ],
            "env": "GREETING=hello",
        },
    )
    assert (await agent.start(OpRequest(timeout=30, epoch=12))).rc == OcfRc.SUCCESS
    _track(agent, kill_groups)
    assert wait_until(lambda: out.exists() and out.read_text().strip() == "12 hello")
    await agent.stop(REQ)


async def test_promote_is_unimplemented(tmp_path: Path) -> None:
    result = await _agent(tmp_path, {"command": SLEEPER}).promote(REQ)
    assert result.rc == OcfRc.ERR_UNIMPLEMENTED


def test_missing_command_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs parameter 'command'"):
        _agent(tmp_path, {})


def test_unknown_param_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no parameter.*comand"):
        _agent(tmp_path, {"command": "x", "comand": "y"})


def test_health_url_must_be_http(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="http://"):
        _agent(tmp_path, {"command": "x", "health_url": "https://example.org/"})


def test_unbalanced_quotes_in_command(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot split"):
        _agent(tmp_path, {"command": "echo 'oops"})


@pytest.mark.slow
async def test_the_log_and_state_file_are_private(tmp_path: Path, kill_groups: list[int]) -> None:
    agent = _agent(tmp_path, {"command": SLEEPER})
    assert (await agent.start(REQ)).rc == OcfRc.SUCCESS
    _track(agent, kill_groups)
    assert stat.S_IMODE(agent.log_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(agent.state_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(agent.state_dir.stat().st_mode) == 0o700
    assert (await agent.stop(REQ)).rc == OcfRc.SUCCESS
