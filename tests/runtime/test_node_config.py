"""The cluster file's text with a node more or less: the operator's text kept as written."""

from __future__ import annotations

import pytest

from hakeeper.config.loader import spec_from_text
from hakeeper.errors import ConfigError
from hakeeper.model.address import HostPort
from hakeeper.runtime.node_config import with_node, without_node

TEXT = """\
[cluster]
name = "c1"  # production

[nodes.n1]
address = "10.0.0.1"
[nodes.n2]
address = "10.0.0.2"
[nodes.n2.attributes]
rack = "b"

[nodes.n3]
address = "10.0.0.3"

[resources.svc]
agent = "process"
params = { command = "/bin/sleep 1000" }
"""


def test_with_node_appends_its_table_and_the_file_loads_with_it() -> None:
    text = with_node(TEXT, "n4", HostPort("10.0.0.4", 7481))
    assert text.startswith(TEXT.rstrip("\n"))
    node = spec_from_text(text, "t").node("n4")
    assert node is not None
    assert (node.address, node.raft_port) == ("10.0.0.4", 7481)


def test_without_node_drops_its_table_and_subtables_and_keeps_every_other_line() -> None:
    text = without_node(TEXT, "n2")
    assert "n2" not in text
    assert "rack" not in text
    assert "# production" in text
    assert "[nodes.n3]" in text
    assert "[resources.svc]" in text
    assert [n.name for n in spec_from_text(text, "t").nodes] == ["n1", "n3"]


@pytest.mark.parametrize("name", ["n4]\n[x", "n 4", "", "a" * 64, 'n"4'])
def test_a_name_that_would_carry_toml_syntax_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="node name"):
        with_node(TEXT, name, HostPort("10.0.0.4", 7480))


def test_an_address_with_toml_syntax_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a host name"):
        with_node(TEXT, "n4", HostPort('10.0.0.4"\nx = "', 7480))


def test_adding_a_node_the_file_has_or_removing_one_it_has_not_is_refused() -> None:
    with pytest.raises(ConfigError, match="already has"):
        with_node(TEXT, "n1", HostPort("10.0.0.9", 7480))
    with pytest.raises(ConfigError, match=r"no \[nodes.n9\] table"):
        without_node(TEXT, "n9")
