"""The whole program's resource-agent table, assembled by the faces."""

from __future__ import annotations

import pytest

from hakeeper.agents.registry import BUILTIN_AGENTS
from hakeeper.cli.plugins import RESOURCE_AGENTS


def test_the_full_table_adds_the_components_to_the_builtin_agents() -> None:
    assert RESOURCE_AGENTS.names == (*BUILTIN_AGENTS.names, "balancer", "sessions")


@pytest.mark.parametrize("scheme", RESOURCE_AGENTS.names)
def test_every_scheme_of_the_full_table_imports(scheme: str) -> None:
    assert callable(RESOURCE_AGENTS.factory(scheme).from_spec)
