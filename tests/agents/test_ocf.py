"""OCF agents: Debian's real Dummy and Stateful unchanged, and small fake agents."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hakeeper.agents.base import OcfRc, OpRequest, Severity
from hakeeper.agents.factory import AgentContext
from hakeeper.agents.ocf import OcfAgent
from hakeeper.agents.registry import BUILTIN_AGENTS
from hakeeper.errors import ConfigError
from tests.agents.conftest import group_gone, require_ocf_agent

REQ = OpRequest(timeout=30, node="n1", epoch=3)
MONITOR = OpRequest(timeout=30, node="n1", epoch=3, interval=10)

pytestmark = pytest.mark.slow  # every test here runs agent processes


async def test_real_dummy_start_monitor_stop_monitor(tmp_path: Path) -> None:
    require_ocf_agent("heartbeat", "Dummy")
    agent = BUILTIN_AGENTS.make(
        "ocf:heartbeat:Dummy",
        AgentContext(
            instance="dummy1", params={"state": str(tmp_path / "dummy.state")}, state_dir=tmp_path
        ),
    )
    try:
        rcs = [
            (await agent.start(REQ)).rc,
            (await agent.monitor(MONITOR)).rc,
            (await agent.stop(REQ)).rc,
            (await agent.monitor(MONITOR)).rc,
        ]
        assert rcs == [OcfRc.SUCCESS, OcfRc.SUCCESS, OcfRc.SUCCESS, OcfRc.NOT_RUNNING]
    finally:
        await agent.stop(REQ)


async def test_real_dummy_probe_before_start_finds_nothing(tmp_path: Path) -> None:
    require_ocf_agent("heartbeat", "Dummy")
    agent = BUILTIN_AGENTS.make(
        "ocf:heartbeat:Dummy",
        AgentContext(instance="dummy2", params={"state": str(tmp_path / "s")}, state_dir=tmp_path),
    )
    result = await agent.monitor(REQ, probe=True)
    assert (result.op, result.rc, result.severity) == ("probe", OcfRc.NOT_RUNNING, Severity.OK)


async def test_real_dummy_meta_data_is_parsed(tmp_path: Path) -> None:
    require_ocf_agent("heartbeat", "Dummy")
    agent = BUILTIN_AGENTS.make(
        "ocf:heartbeat:Dummy", AgentContext(instance="dummy3", state_dir=tmp_path)
    )
    meta = agent.meta_data()
    assert meta.name == "Dummy"
    assert meta.param("state") is not None
    assert meta.timeout("start") == 20.0


async def test_real_dummy_validate_all_succeeds(tmp_path: Path) -> None:
    require_ocf_agent("heartbeat", "Dummy")
    agent = BUILTIN_AGENTS.make(
        "ocf:heartbeat:Dummy",
        AgentContext(instance="dummy4", params={"state": str(tmp_path / "s")}, state_dir=tmp_path),
    )
    assert isinstance(agent, OcfAgent)
    assert (await agent.validate_all(REQ)).rc == OcfRc.SUCCESS


async def test_real_stateful_promote_then_monitor_says_promoted(tmp_path: Path) -> None:
    require_ocf_agent("heartbeat", "Stateful")
    agent = BUILTIN_AGENTS.make(
        "ocf:heartbeat:Stateful",
        AgentContext(
            instance="stateful1",
            params={"state": str(tmp_path / "stateful.state")},
            state_dir=tmp_path,
        ),
    )
    try:
        assert (await agent.start(REQ)).rc == OcfRc.SUCCESS
        assert (await agent.monitor(MONITOR)).rc == OcfRc.SUCCESS
        assert (await agent.promote(REQ)).rc == OcfRc.SUCCESS
        promoted = await agent.monitor(MONITOR)
        assert (promoted.rc, promoted.severity, promoted.promoted) == (
            OcfRc.RUNNING_PROMOTED,
            Severity.OK,
            True,
        )
        assert (await agent.demote(REQ)).rc == OcfRc.SUCCESS
        assert (await agent.monitor(MONITOR)).rc == OcfRc.SUCCESS
        assert (await agent.stop(REQ)).rc == OcfRc.SUCCESS
        assert (await agent.monitor(MONITOR)).rc == OcfRc.NOT_RUNNING
    finally:
        await agent.demote(REQ)
        await agent.stop(REQ)


def test_missing_agent_names_path_and_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        BUILTIN_AGENTS.make(
            "ocf:heartbeat:NoSuchAgent",
            AgentContext(instance="x", state_dir=tmp_path, ocf_root=tmp_path / "ocf"),
        )
    message = str(info.value)
    assert str(tmp_path / "ocf" / "resource.d" / "heartbeat" / "NoSuchAgent") in message
    assert "resource-agents" in message


def test_misspelt_agent_lists_close_matches(
    tmp_path: Path, fake_ocf_root: Path, ocf_script: Callable[[str, str], Path]
) -> None:
    ocf_script("Dummy", "exit 0\n")
    with pytest.raises(ConfigError, match=r"close matches .*: Dummy"):
        BUILTIN_AGENTS.make(
            "ocf:test:Dumy", AgentContext(instance="x", state_dir=tmp_path, ocf_root=fake_ocf_root)
        )


def test_malformed_ocf_spec(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ocf:<provider>:<type>"):
        BUILTIN_AGENTS.make("ocf:Dummy", AgentContext(instance="x", state_dir=tmp_path))


def test_required_param_missing_is_named(tmp_path: Path, fake_ocf_root: Path) -> None:
    from tests.agents.conftest import write_script

    write_script(
        fake_ocf_root / "resource.d" / "test" / "Needy",
        """
        cat <<'XML'
        <resource-agent name="Needy"><parameters>
        <parameter name="config" required="1"><content type="string"/></parameter>
        <parameter name="port"><content type="integer" default="80"/></parameter>
        </parameters><actions/></resource-agent>
        XML
        """,
    )
    with pytest.raises(ConfigError, match=r"lacks required parameter.*config"):
        BUILTIN_AGENTS.make(
            "ocf:test:Needy",
            AgentContext(
                instance="x", params={"port": 1}, state_dir=tmp_path, ocf_root=fake_ocf_root
            ),
        )


def test_unknown_param_suggests_the_close_one(
    tmp_path: Path, fake_ocf_root: Path, ocf_script: Callable[[str, str], Path]
) -> None:
    require_ocf_agent("heartbeat", "Dummy")
    with pytest.raises(ConfigError, match=r"no parameter 'stat'.*did you mean 'state'"):
        BUILTIN_AGENTS.make(
            "ocf:heartbeat:Dummy",
            AgentContext(instance="x", params={"stat": "/tmp/x"}, state_dir=tmp_path),
        )


async def test_timeout_kills_the_agents_process_group(
    tmp_path: Path,
    fake_ocf_root: Path,
    ocf_script: Callable[[str, str], Path],
    kill_groups: list[int],
) -> None:
    ocf_script(
        "Slow",
        f"""
        sleep 300 &
        echo $$ > {tmp_path}/pgid
        sleep 300
        """,
    )
    agent = BUILTIN_AGENTS.make(
        "ocf:test:Slow", AgentContext(instance="slow", state_dir=tmp_path, ocf_root=fake_ocf_root)
    )
    result = await agent.start(OpRequest(timeout=1.5))
    pgid = int((tmp_path / "pgid").read_text())
    kill_groups.append(pgid)
    assert result.timed_out
    assert (result.rc, result.severity) == (OcfRc.ERR_GENERIC, Severity.SOFT)
    assert group_gone(pgid), "the timed-out agent's helpers must be killed with it"


async def test_exit_reason_and_installed_error_is_hard(
    tmp_path: Path, fake_ocf_root: Path, ocf_script: Callable[[str, str], Path]
) -> None:
    ocf_script(
        "Broken",
        """
        echo "ocf-exit-reason:binary /usr/sbin/thing is missing" >&2
        exit 5
        """,
    )
    agent = BUILTIN_AGENTS.make(
        "ocf:test:Broken", AgentContext(instance="b", state_dir=tmp_path, ocf_root=fake_ocf_root)
    )
    result = await agent.start(REQ)
    assert (result.rc, result.severity) == (OcfRc.ERR_INSTALLED, Severity.HARD)
    assert result.exit_reason == "binary /usr/sbin/thing is missing"
    assert "thing is missing" in result.describe()


async def test_agent_sees_its_environment(
    tmp_path: Path, fake_ocf_root: Path, ocf_script: Callable[[str, str], Path]
) -> None:
    ocf_script("Env", f"env | grep -E '^(OCF_|HAKEEPER_)' | sort > {tmp_path}/env\nexit 0\n")
    agent = BUILTIN_AGENTS.make(
        "ocf:test:Env",
        AgentContext(
            instance="e1",
            meta={"target-role": "Started"},
            state_dir=tmp_path,
            ocf_root=fake_ocf_root,
        ),
    )
    await agent.monitor(OpRequest(timeout=10, node="n2", epoch=77), probe=True)
    lines = set((tmp_path / "env").read_text().splitlines())
    assert {
        "HAKEEPER_EPOCH=77",
        "OCF_RESKEY_CRM_meta_hakeeper_epoch=77",
        "OCF_RESKEY_CRM_meta_interval=0",
        "OCF_RESKEY_CRM_meta_name=monitor",
        "OCF_RESKEY_CRM_meta_on_node=n2",
        "OCF_RESKEY_CRM_meta_target_role=Started",
        "OCF_RESOURCE_INSTANCE=e1",
        f"OCF_ROOT={fake_ocf_root}",
    } <= lines


async def test_agent_removed_after_load_is_not_installed(
    tmp_path: Path, fake_ocf_root: Path, ocf_script: Callable[[str, str], Path]
) -> None:
    path = ocf_script("Gone", "exit 0\n")
    agent = BUILTIN_AGENTS.make(
        "ocf:test:Gone", AgentContext(instance="g", state_dir=tmp_path, ocf_root=fake_ocf_root)
    )
    path.unlink()
    result = await agent.start(REQ)
    assert (result.rc, result.severity) == (OcfRc.ERR_INSTALLED, Severity.HARD)
