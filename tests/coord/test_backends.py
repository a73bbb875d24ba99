"""The coordination backend table: names resolve to classes that open from the cluster file."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import pytest

from hakeeper.config.loader import spec_from_text
from hakeeper.coord import BACKENDS, backend_class
from hakeeper.coord.base import CoordinatorContext
from hakeeper.coord.etcd import EtcdCoordinator
from hakeeper.coord.raft import RaftCoordinator
from hakeeper.coord.raft_peers import raft_peers
from hakeeper.errors import ConfigError

SPEC = spec_from_text(
    '[cluster]\nname = "c1"\n'
    '[nodes.n1]\naddress = "127.0.0.11"\n[nodes.n2]\naddress = "127.0.0.12"\nraft_port = 7481\n',
    "test",
)


def context(tmp_path: Path | None = None, node: str | None = "n1") -> CoordinatorContext:
    return CoordinatorContext(spec=SPEC, scope="/hakeeper/c1/", node=node, state_dir=tmp_path)


def test_the_table_resolves_both_backends_to_their_classes() -> None:
    assert backend_class("raft") is RaftCoordinator
    assert backend_class("etcd") is EtcdCoordinator


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_every_backend_opens_itself_from_the_cluster_file(name: str) -> None:
    assert inspect.iscoroutinefunction(backend_class(name).open_for)


def test_an_unknown_backend_is_a_config_error_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown coordination backend 'zookeeper'.*raft, etcd"):
        backend_class("zookeeper")


def test_a_backend_whose_module_cannot_be_imported_says_to_reinstall(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # None in sys.modules makes the import fail as a missing dependency would.
    monkeypatch.setitem(sys.modules, "hakeeper.coord.etcd", None)
    with pytest.raises(ConfigError, match=r"backend 'etcd' needs hakeeper\.coord\.etcd.*reinstall"):
        backend_class("etcd")


def test_raft_peers_are_every_nodes_address_and_raft_port() -> None:
    assert raft_peers(SPEC) == ["127.0.0.11:7480", "127.0.0.12:7481"]


async def test_a_raft_member_for_a_node_outside_the_cluster_file_is_refused(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match=r"node .n9. is not in the cluster file \(nodes: n1, n2"):
        await RaftCoordinator.open_for(context(tmp_path, node="n9"))


async def test_a_raft_member_without_a_state_directory_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"needs a state directory for its log \(--state-dir\)"):
        await RaftCoordinator.open_for(context(None))


def test_only_the_raft_backend_needs_the_cluster_secret() -> None:
    assert backend_class("raft").needs_cluster_secret
    assert not backend_class("etcd").needs_cluster_secret
