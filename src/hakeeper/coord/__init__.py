"""Coordination engines behind one contract (`hakeeper.coord.base.Coordinator`).

Backends are plug-ins resolved by name, so nothing above this package imports a backend
module or branches on its type.
"""

from __future__ import annotations

import importlib
from typing import Any

from hakeeper.coord.base import (
    KV,
    Cmp,
    Coordinator,
    Delete,
    Get,
    Lease,
    Op,
    Put,
    TxnResult,
    WatchEvent,
)
from hakeeper.errors import ConfigError

BACKENDS: dict[str, str] = {
    "raft": "hakeeper.coord.raft:RaftCoordinator",
    "etcd": "hakeeper.coord.etcd:EtcdCoordinator",
}


def backend_class(name: str) -> Any:
    """The Coordinator class registered as ``name``; a clear error if unknown or not loadable."""
    try:
        target = BACKENDS[name]
    except KeyError:
        raise ConfigError(
            f"unknown coordination backend {name!r}: use one of {', '.join(BACKENDS)}"
        ) from None
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"coordination backend {name!r} needs a module that is not installed ({exc.name}): "
            "reinstall hakeeper with its dependencies"
        ) from exc
    return getattr(module, attr)


__all__ = [
    "BACKENDS",
    "KV",
    "Cmp",
    "Coordinator",
    "Delete",
    "Get",
    "Lease",
    "Op",
    "Put",
    "TxnResult",
    "WatchEvent",
    "backend_class",
]
