"""make_agent: scheme table, malformed specs, names."""

from __future__ import annotations

from pathlib import Path

import pytest

from hakeeper.agents.base import ResourceAgent
from hakeeper.agents.registry import AGENT_SCHEMES, agent_factory, make_agent
from hakeeper.errors import ConfigError


def test_unknown_scheme_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown resource agent 'docker:web'.*ocf:<provider>"):
        make_agent("docker:web", "web", {}, {}, state_dir=tmp_path)


def test_process_takes_no_target(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="write just 'process'"):
        make_agent("process:web", "web", {"command": "x"}, {}, state_dir=tmp_path)


@pytest.mark.parametrize("name", ["", "a/b", "../x", "has space", "web\n"])
def test_bad_instance_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="resource name"):
        make_agent("process", name, {"command": "x"}, {}, state_dir=tmp_path)


def test_clone_instance_names_are_accepted(tmp_path: Path) -> None:
    agent = make_agent("process", "web:2", {"command": "x"}, {}, state_dir=tmp_path)
    assert agent.instance == "web:2"


@pytest.mark.parametrize("scheme", sorted(AGENT_SCHEMES))
def test_every_registered_scheme_imports(scheme: str) -> None:
    assert callable(agent_factory(scheme).from_spec)


def test_process_agent_satisfies_the_protocol(tmp_path: Path) -> None:
    agent = make_agent("process", "web", {"command": "x"}, {}, state_dir=tmp_path)
    assert isinstance(agent, ResourceAgent)


def test_a_parameter_with_a_newline_never_reaches_an_agent(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"resource 'web': params.command: contains a newline"):
        make_agent("process", "web", {"command": "sleep 1\nrm x"}, {}, state_dir=tmp_path)


def test_a_nul_in_an_ocf_parameter_never_reaches_the_environment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"params.state: contains a NUL byte"):
        make_agent("ocf:heartbeat:Dummy", "db", {"state": "/x\0"}, {}, state_dir=tmp_path)


def test_a_unit_name_with_a_newline_never_reaches_systemctl(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"agent: contains a newline"):
        make_agent("systemd:nginx\n", "web", {}, {}, state_dir=tmp_path)
