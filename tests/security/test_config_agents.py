"""Hostile config values: a newline in a fence parameter; a stored config that cannot load.

Each test asserts that the attack failed, that the target is still alive (or, for a fence
device, untouched) and that a normal operation afterwards succeeds.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from hakeeper.config import parse
from hakeeper.errors import ConfigError
from hakeeper.fencing.device import FenceDevice, PowerState
from hakeeper.fencing.fence_agents import FenceAgentRunner
from hakeeper.fencing.topology import Fencer, FencingPlan
from tests.conftest import require_binary

INJECTED = "n1\naction=on"


@pytest.fixture
def powered_on(tmp_path: Path) -> Path:
    """fence_dummy's power switch: a file holding "on" (the node runs) or "off"."""
    require_binary("fence_dummy", "fence-agents")
    status = tmp_path / "status"
    status.write_text("on")
    return status


def dummy_doc(status: Path, hosts: dict[str, str]) -> dict[str, Any]:
    return {
        "nodes": {"n1": {}, "n2": {}, "n3": {}},
        "fencing": {
            "devices": {
                "dummy": {
                    "agent": "fence_dummy",
                    "params": {"type": "file", "status_file": str(status)},
                    "hosts": hosts,
                    "host_argument": "port",
                }
            }
        },
    }


def test_the_config_refuses_a_newline_in_a_host_map_value(powered_on: Path) -> None:
    with pytest.raises(ConfigError, match=r"fencing.devices.dummy.hosts.n1: contains a newline"):
        parse(dummy_doc(powered_on, {"n1": INJECTED}))
    parse(dummy_doc(powered_on, {"n1": "n1"}))  # the same device without the newline loads


async def test_a_newline_that_bypassed_validation_cannot_turn_an_off_into_an_on(
    powered_on: Path,
) -> None:
    """The value goes after ``action=off`` on the agent's stdin: unguarded, its own
    ``action=on`` line would win, the agent would answer 0 and the node would be marked
    fenced while it runs. The runner refuses to write it; the fence fails instead."""
    params = {"type": "file", "status_file": str(powered_on)}
    hostile = FenceDevice(
        "dummy", "fence_dummy", params=params, host_map={"n1": INJECTED}, host_argument="port"
    )
    runner = FenceAgentRunner()
    plan = FencingPlan({"dummy": hostile})
    fencer = Fencer(plan, runner, rng=random.Random(1), sleep=_no_sleep)
    outcome = await fencer.fence("n1", "off")
    assert not outcome.fenced, outcome.reason  # never reported fenced
    assert all("contains a newline" in a.output_tail for a in outcome.attempts)
    assert switch(powered_on) == "on"  # the agent never ran: the node is untouched
    honest = FenceDevice("dummy", "fence_dummy", params=params, host_argument="none")
    assert (await runner.run(honest, "off", "n1")).ok
    assert await runner.power_state(honest, "n1") is PowerState.OFF


def switch(status: Path) -> str:
    return status.read_text()


async def _no_sleep(_: float) -> None:
    return None
