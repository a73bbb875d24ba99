"""The ``balancer`` resource agent: validated at config load, supervised like a process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hakeeper.agents.base import OcfRc, OpRequest
from hakeeper.agents.factory import AgentContext
from hakeeper.cli.plugins import RESOURCE_AGENTS
from hakeeper.errors import ConfigError
from hakeeper.lab.processes import free_port
from tests.balancer.backends import HttpBackend
from tests.balancer.conftest import get


def write_config(path: Path, port: int, backend: str) -> Path:
    path.write_text(
        f"""
[[frontend]]
name = "fe"
bind = "127.0.0.1:{port}"
backend = "be"

[[backend]]
name = "be"
servers = [{{ name = "a", address = "{backend}" }}]
"""
    )
    return path


def test_a_broken_balancer_file_is_refused_at_config_load(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[frontend]]\nname = 'x'\n")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        RESOURCE_AGENTS.make(
            "balancer", AgentContext(instance="lb", params={"config": str(bad)}, state_dir=tmp_path)
        )


def test_unknown_parameter_is_named(tmp_path: Path) -> None:
    path = write_config(tmp_path / "b.toml", 1, "127.0.0.1:2")
    with pytest.raises(ConfigError, match="has no parameter"):
        RESOURCE_AGENTS.make(
            "balancer",
            AgentContext(
                instance="lb", params={"config": str(path), "cfg": "x"}, state_dir=tmp_path
            ),
        )


@pytest.mark.slow
async def test_agent_starts_monitors_and_stops_a_balancer(tmp_path: Path) -> None:
    backend = await HttpBackend("a").start()
    port = free_port()
    path = write_config(tmp_path / "b.toml", port, backend.address)
    agent = RESOURCE_AGENTS.make(
        "balancer", AgentContext(instance="lb", params={"config": str(path)}, state_dir=tmp_path)
    )
    request = OpRequest(timeout=20.0)
    try:
        assert (await agent.start(request)).rc == OcfRc.SUCCESS
        async with asyncio.timeout(20):
            while True:
                try:
                    response = await get(port)
                    break
                except OSError:
                    await asyncio.sleep(0.2)
        assert response.body == b"a"
        assert (await agent.monitor(request)).rc == OcfRc.SUCCESS
    finally:
        assert (await agent.stop(request)).rc == OcfRc.SUCCESS
        await backend.stop()
    assert (await agent.monitor(request)).rc == OcfRc.NOT_RUNNING
