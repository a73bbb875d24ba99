"""Coordination engines behind one contract (`hakeeper.coord.base.Coordinator`).

Backends are plug-ins resolved by name: `backend_class` imports the class `BACKENDS` names
and every such class opens itself from the cluster file (`CoordinatorBackend.open_for`), so
nothing above this package imports a backend module or branches on which one is in use.
Import the contract from `hakeeper.coord.base`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import cast

from hakeeper.coord.base import CoordinatorBackend
from hakeeper.errors import ConfigError
from hakeeper.model.plugin import load_plugin

BACKENDS: Mapping[str, str] = MappingProxyType(
    {
        "raft": "hakeeper.coord.raft:RaftCoordinator",
        "etcd": "hakeeper.coord.etcd:EtcdCoordinator",
    }
)


def backend_class(name: str) -> CoordinatorBackend:
    """The backend class registered as ``name``; a clear error if unknown or not loadable."""
    try:
        target = BACKENDS[name]
    except KeyError:
        raise ConfigError(
            f"unknown coordination backend {name!r}: use one of {', '.join(BACKENDS)}"
        ) from None
    return cast(CoordinatorBackend, load_plugin(target, f"coordination backend {name!r}"))
