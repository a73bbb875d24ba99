"""The cluster file (TOML): schema, validation with fixes in the messages, and the model.

    cf = load("cluster.toml")       # ClusterFile (frozen pydantic); ConfigError if invalid
    spec = to_spec(cf)              # ClusterSpec (plain frozen dataclasses) for the scheduler

`docs/config.md` is the reference of every key.

The names below are imported when first used: a process that needs only
`hakeeper.config.secret_file` (the session store) does not load pydantic and the schema,
some 30 MiB of resident memory.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hakeeper.config.checks import warnings
    from hakeeper.config.loader import load, load_spec, parse, read_toml, to_spec
    from hakeeper.config.schema import ClusterFile

_HOMES = {
    "warnings": "hakeeper.config.checks",
    "load": "hakeeper.config.loader",
    "load_spec": "hakeeper.config.loader",
    "parse": "hakeeper.config.loader",
    "read_toml": "hakeeper.config.loader",
    "to_spec": "hakeeper.config.loader",
    "ClusterFile": "hakeeper.config.schema",
}

__all__ = [
    "ClusterFile",
    "load",
    "load_spec",
    "parse",
    "read_toml",
    "to_spec",
    "warnings",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'hakeeper.config' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
