"""The agent plug-in table: scheme table, malformed specs, names."""

from __future__ import annotations

from pathlib import Path

import pytest

from hakeeper.agents.base import ResourceAgent
from hakeeper.agents.factory import AgentContext
from hakeeper.agents.registry import BUILTIN_AGENTS, AgentScheme, AgentTable
from hakeeper.errors import ConfigError


def context(tmp_path: Path, instance: str = "web", **params: object) -> AgentContext:
    return AgentContext(instance=instance, params=params, state_dir=tmp_path)


def test_unknown_scheme_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown resource agent 'docker:web'.*ocf:<provider>"):
        BUILTIN_AGENTS.make("docker:web", context(tmp_path))


def test_process_takes_no_target(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="write just 'process'"):
        BUILTIN_AGENTS.make("process:web", context(tmp_path, command="x"))


@pytest.mark.parametrize("name", ["", "a/b", "../x", "has space", "web\n"])
def test_bad_instance_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="resource name"):
        BUILTIN_AGENTS.make("process", context(tmp_path, name, command="x"))


def test_clone_instance_names_are_accepted(tmp_path: Path) -> None:
    agent = BUILTIN_AGENTS.make("process", context(tmp_path, "web:2", command="x"))
    assert agent.instance == "web:2"


@pytest.mark.parametrize("scheme", BUILTIN_AGENTS.names)
def test_every_registered_scheme_imports(scheme: str) -> None:
    assert callable(BUILTIN_AGENTS.factory(scheme).from_spec)


def test_process_agent_satisfies_the_protocol(tmp_path: Path) -> None:
    agent = BUILTIN_AGENTS.make("process", context(tmp_path, command="x"))
    assert isinstance(agent, ResourceAgent)


def test_a_parameter_with_a_newline_never_reaches_an_agent(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"resource 'web': params.command: contains a newline"):
        BUILTIN_AGENTS.make("process", context(tmp_path, command="sleep 1\nrm x"))


def test_a_nul_in_an_ocf_parameter_never_reaches_the_environment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"params.state: contains a NUL byte"):
        BUILTIN_AGENTS.make("ocf:heartbeat:Dummy", context(tmp_path, "db", state="/x\0"))


def test_a_unit_name_with_a_newline_never_reaches_systemctl(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"agent: contains a newline"):
        BUILTIN_AGENTS.make("systemd:nginx\n", context(tmp_path))


def test_the_builtin_table_holds_only_this_layers_agents() -> None:
    assert BUILTIN_AGENTS.names == ("process", "ocf", "systemd", "lsb", "vip")


def test_an_added_scheme_is_built_through_the_extended_table(tmp_path: Path) -> None:
    table = BUILTIN_AGENTS.plus(AgentScheme("supervised", "hakeeper.agents.process:ProcessAgent"))
    agent = table.make("supervised", context(tmp_path, command="x"))
    assert agent.instance == "web"
    assert "supervised" not in BUILTIN_AGENTS.names, "plus must not change the table it extends"


def test_a_scheme_registered_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="registered twice: process"):
        BUILTIN_AGENTS.plus(AgentScheme("process", "hakeeper.agents.process:ProcessAgent"))


def test_the_unknown_scheme_message_lists_exactly_the_tables_schemes(tmp_path: Path) -> None:
    table = AgentTable((AgentScheme("lsb", "hakeeper.agents.lsb:LsbAgent", "<script>"),))
    with pytest.raises(ConfigError, match=r"use one of: lsb:<script>$"):
        table.make("process", context(tmp_path))


def test_a_scheme_whose_module_is_missing_names_it_and_the_fix(tmp_path: Path) -> None:
    table = AgentTable((AgentScheme("ghost", "hakeeper.agents.no_such_module:Ghost"),))
    with pytest.raises(
        ConfigError, match=r"'ghost' needs hakeeper\.agents\.no_such_module.*install"
    ):
        table.make("ghost", context(tmp_path))
