"""The node map of a restore onto other machines, and the config it rewrites."""

from __future__ import annotations

import pytest

from hakeeper.backup.node_map import (
    NodeTarget,
    parse_node_map,
    rewrite_node_addresses,
    set_resource_params,
    set_table_keys,
)
from hakeeper.config.loader import spec_from_text
from hakeeper.errors import ConfigError
from tests.backup.cluster_fixtures import cluster_config


def test_a_map_entry_is_a_host_or_a_host_and_raft_port() -> None:
    assert parse_node_map(["n1=10.0.0.21", "n2=10.0.0.22:7481"]) == {
        "n1": NodeTarget("10.0.0.21"),
        "n2": NodeTarget("10.0.0.22", 7481),
    }


@pytest.mark.parametrize("entry", ["n1", "=10.0.0.1", "n1=10.0.0.1:0", "n1=a b", "n1=x\n"])
def test_a_bad_map_entry_is_refused_with_the_form_to_use(entry: str) -> None:
    with pytest.raises(ConfigError, match="--map"):
        parse_node_map([entry])


def test_rewrite_changes_only_the_mapped_nodes_addresses() -> None:
    text = cluster_config("/etc/hakeeper/secret")
    out = rewrite_node_addresses(text, parse_node_map(["n1=127.0.0.21:9001", "n2=127.0.0.22"]))
    spec = spec_from_text(out, "t")
    n1, n2 = spec.node("n1"), spec.node("n2")
    assert n1 is not None
    assert n2 is not None
    assert (n1.address, n1.raft_port, n2.address, n2.raft_port) == (
        "127.0.0.21", 9001, "127.0.0.22", 7480,
    )  # fmt: skip
    assert (
        out.replace("127.0.0.21", "10.0.0.1")
        .replace("127.0.0.22", "10.0.0.2")
        .replace("raft_port = 9001\n", "")
        == text
    )


def test_a_map_naming_an_unknown_node_is_refused() -> None:
    with pytest.raises(ConfigError, match="n9"):
        rewrite_node_addresses(cluster_config("/s"), parse_node_map(["n9=10.0.0.9"]))


def test_set_table_keys_stops_at_an_array_of_tables_and_can_add_a_table() -> None:
    text = '[cluster]\nname = "a"\n[[constraints.order]]\nfencing = 1\n'
    out = set_table_keys(text, {"cluster": {"fencing": "false"}, "fencing": {"watchdog": '"off"'}},
                         add_missing=True)  # fmt: skip
    assert out == (
        '[cluster]\nname = "a"\nfencing = false\n[[constraints.order]]\nfencing = 1\n'
        '\n[fencing]\nwatchdog = "off"\n'
    )


SESSIONS_FORMS = {
    "inline": '[resources.store]\nagent = "sessions"\nparams = { port = 11311, memory = "8m", '
    'nodes = { n1 = "10.0.0.1", n2 = "10.0.0.2" }, other = { n1 = "x" } }\n',
    "params table": '[resources.store]\nagent = "sessions"\n[resources.store.params]\n'
    'port = 11311\nmemory = "8m"\nnodes = { n1 = "10.0.0.1", n2 = "10.0.0.2" }\n'
    'other = { n1 = "x" }\n',
    "nodes table": '[resources.store]\nagent = "sessions"\n[resources.store.params]\n'
    'port = 11311\nmemory = "8m"\nother = { n1 = "x" }\n[resources.store.params.nodes]\n'
    'n1 = "10.0.0.1"\nn2 = "10.0.0.2"\n',
}


@pytest.mark.parametrize("form", sorted(SESSIONS_FORMS))
def test_a_resources_table_of_node_addresses_follows_the_mapped_nodes(form: str) -> None:
    text = cluster_config("/s").replace("[backup]", SESSIONS_FORMS[form] + "\n[backup]")
    out = rewrite_node_addresses(text, parse_node_map(["n1=127.0.0.21:9001"]))
    store = next(p for p in spec_from_text(out, "t").primitives if p.id == "store")
    assert store.params["nodes"] == {"n1": "127.0.0.21", "n2": "10.0.0.2"}
    assert store.params["other"] == {"n1": "x"}  # not addresses of the nodes: left alone
    assert (store.params["port"], store.params["memory"]) == (11311, "8m")


def test_a_table_of_node_addresses_in_a_form_the_map_cannot_rewrite_is_refused() -> None:
    dotted = '[resources.store]\nagent = "sessions"\nparams.nodes.n1 = "10.0.0.1"\n'
    text = cluster_config("/s").replace("[backup]", dotted + "params.port = 1\n\n[backup]")
    with pytest.raises(ConfigError, match="resource 'store': params nodes are written in a form"):
        rewrite_node_addresses(text, parse_node_map(["n1=127.0.0.21"]))


@pytest.mark.parametrize("form", sorted(SESSIONS_FORMS))
def test_set_resource_params_sets_scalars_where_the_file_defines_params(form: str) -> None:
    text = cluster_config("/s").replace("[backup]", SESSIONS_FORMS[form] + "\n[backup]")
    out = set_resource_params(text, "store", {"port": 40001, "peer_port": 40002})
    store = next(p for p in spec_from_text(out, "t").primitives if p.id == "store")
    assert (store.params["port"], store.params["peer_port"]) == (40001, 40002)
    assert store.params["nodes"] == {"n1": "10.0.0.1", "n2": "10.0.0.2"}
