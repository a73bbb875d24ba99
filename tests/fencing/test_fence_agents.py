"""The fence-agents protocol against Debian's real fence_dummy and a recording stub."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hakeeper.errors import ConfigError
from hakeeper.fencing.device import FenceDevice, PowerState, is_secret_param
from hakeeper.fencing.fence_agents import (
    FenceAgentRunner,
    UnsafeFenceInput,
    parse_metadata_parameters,
    stdin_line,
)
from tests.conftest import alive, require_binary
from tests.fencing.conftest import STUB_METADATA, stub_agent


@pytest.fixture
def dummy_state(tmp_path: Path) -> Path:
    require_binary("fence_dummy")
    status = tmp_path / "status"
    status.write_text("on")  # fence_dummy compares the file's text exactly
    return status


def dummy(status: Path) -> FenceDevice:
    return FenceDevice("dummy", "fence_dummy", params={"type": "file", "status_file": str(status)})


async def test_real_fence_dummy_powers_off_and_reports_it(dummy_state: Path) -> None:
    runner = FenceAgentRunner()
    device = dummy(dummy_state)
    assert await runner.power_state(device, "n1") is PowerState.ON
    result = await runner.run(device, "off", "n1")
    assert result.ok, result.output_tail
    assert await runner.power_state(device, "n1") is PowerState.OFF
    assert (await runner.run(device, "on", "n1")).ok
    assert await runner.power_state(device, "n1") is PowerState.ON


async def test_real_fence_dummy_gets_no_target_argument(dummy_state: Path) -> None:
    result = await FenceAgentRunner().run(dummy(dummy_state), "monitor", "n1")
    assert result.ok
    assert "Ignoring unknown option" not in result.output_tail


async def test_the_agent_reads_params_action_and_port_on_stdin(tmp_path: Path) -> None:
    record = tmp_path / "stdin"
    stub_agent(tmp_path, f'printf "%s" "$input" > {record}; exit 0')
    device = FenceDevice("stub", "fence_stub", params={"ipaddr": "10.0.0.9"}, host_map={"n1": "7"})
    result = await FenceAgentRunner([str(tmp_path)]).run(device, "off", "n1")
    assert result.ok
    assert record.read_text().splitlines() == ["ipaddr=10.0.0.9", "action=off", "port=7"]


async def test_status_exit_codes_map_to_power_states(tmp_path: Path) -> None:
    runner = FenceAgentRunner([str(tmp_path)])
    device = FenceDevice("stub", "fence_stub")
    for code, state in ((0, PowerState.ON), (2, PowerState.OFF), (1, PowerState.UNKNOWN)):
        stub_agent(tmp_path, f"exit {code}")
        assert await runner.power_state(device, "n1") is state


async def test_an_agent_past_its_timeout_is_killed_with_its_children(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    stub_agent(tmp_path, f"sleep 60 & echo $! > {pids}; wait")
    device = FenceDevice("stub", "fence_stub", timeout=1.0)
    result = await FenceAgentRunner([str(tmp_path)]).run(device, "off", "n1")
    assert not result.ok
    assert result.exit_code is None
    # The group was SIGKILLed; the orphaned child is reaped by init a moment later.
    child = int(pids.read_text())
    for _ in range(100):
        if not alive(child):
            break
        await asyncio.sleep(0.05)
    assert not alive(child)


def test_a_missing_agent_is_named_with_close_matches() -> None:
    require_binary("fence_dummy")
    with pytest.raises(ConfigError, match="did you mean fence_dummy"):
        FenceAgentRunner().resolve("fence_dumy")


def test_metadata_parameters_are_read_from_the_xml() -> None:
    assert parse_metadata_parameters(STUB_METADATA) == {"action", "port", "ipaddr"}


@pytest.mark.parametrize(
    ("params", "host_map"),
    [({"ipaddr": "10.0.0.9\naction=on"}, {}), ({}, {"n1": "7\naction=on"}), ({"a\rb": "1"}, {})],
)
async def test_a_control_character_is_never_written_to_the_agent(
    tmp_path: Path, params: dict[str, str], host_map: dict[str, str]
) -> None:
    record = tmp_path / "stdin"
    stub_agent(tmp_path, f'printf "%s" "$input" > {record}; exit 0')
    device = FenceDevice("stub", "fence_stub", params=params, host_map=host_map)
    result = await FenceAgentRunner([str(tmp_path)]).run(device, "off", "n1")
    assert not result.ok
    assert result.refused
    assert "refused" in result.describe()
    assert not record.exists()


def test_stdin_line_raises_on_a_newline() -> None:
    with pytest.raises(UnsafeFenceInput, match="contains a newline"):
        stdin_line("passwd", "p1\naction=on")


async def test_a_password_the_agent_echoes_is_redacted(tmp_path: Path) -> None:
    stub_agent(tmp_path, 'echo "login failed: ipmitool -P s3cret-pw"; exit 1')
    device = FenceDevice("stub", "fence_stub", params={"passwd": "s3cret-pw"})
    result = await FenceAgentRunner([str(tmp_path)]).run(device, "off", "n1")
    assert "s3cret-pw" not in result.output_tail
    assert "-P ***" in result.output_tail


def test_secret_params_stay_out_of_the_device_repr() -> None:
    device = FenceDevice("stub", "fence_stub", params={"passwd": "s3cret-pw"})
    assert "s3cret-pw" not in repr(device)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("passwd", True),
        ("password", True),
        ("snmp_priv_passwd", True),
        ("ilo_password", True),
        ("passwd_script", True),
        ("username", False),
        ("ipaddr", False),
    ],
)
def test_secret_parameter_names_follow_fence_agents(name: str, secret: bool) -> None:
    assert is_secret_param(name) is secret
