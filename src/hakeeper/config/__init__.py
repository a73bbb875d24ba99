"""The cluster file (TOML): schema, validation with fixes in the messages, and the model.

    cf = load("cluster.toml")       # ClusterFile (frozen pydantic); ConfigError if invalid
    spec = to_spec(cf)              # ClusterSpec (plain frozen dataclasses) for the scheduler

`docs/config.md` is the reference of every key.
"""

from hakeeper.config.checks import warnings
from hakeeper.config.loader import load, load_spec, parse, read_toml, to_spec
from hakeeper.config.schema import ClusterFile, parse_duration

__all__ = [
    "ClusterFile",
    "load",
    "load_spec",
    "parse",
    "parse_duration",
    "read_toml",
    "to_spec",
    "warnings",
]
