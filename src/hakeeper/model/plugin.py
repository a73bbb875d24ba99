"""A plug-in named by ``"package.module:Attribute"`` (uvicorn's style), loaded when used.

Plug-in tables (resource agents, coordination backends) hold these strings, so that a kind
whose optional dependency is missing fails with one clear message where it is used, and so
that a table can name a class without importing it.
"""

from __future__ import annotations

import importlib

from hakeeper.errors import ConfigError


def load_plugin(target: str, what: str) -> object:
    """The attribute ``target`` names, imported now; ``what`` names the plug-in in errors.

    A `ConfigError` when its module (or a module it needs) is not installed.
    """
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"{what} needs {exc.name or module_name}, which is not installed; "
            "reinstall hakeeper with its dependencies"
        ) from exc
    return getattr(module, attr)
