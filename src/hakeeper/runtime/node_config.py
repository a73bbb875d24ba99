"""The cluster file's text with one node more or one node less, as `node add|remove` store it.

An edit of the operator's own text, not a rewrite: comments, order and every other table
stay as written, so the difference `config apply` shows is exactly the node's table. The
result is validated by the caller (the same path as ``config apply``): a node that other
tables still name (a location constraint, a fence host map) makes the smaller file fail to
load, with the loader's message.
"""

from __future__ import annotations

import re

from hakeeper.errors import ConfigError
from hakeeper.model.address import HostPort

# Node names as hakeeper writes them bare in a table header; anything else is refused rather
# than quoted, so that a name never carries TOML syntax into the file.
_NAME = re.compile(r"[A-Za-z0-9_-]{1,63}")
_HEADER = re.compile(r"\s*\[")


def check_node_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"node name {name!r}: use 1-63 letters, digits, '-' or '_' (e.g. n4, db-3)"
        )
    return name


def _node_header(name: str) -> re.Pattern[str]:
    quoted = re.escape(name)
    return re.compile(rf'\s*\[\s*nodes\s*\.\s*(?:{quoted}|"{quoted}")\s*(?:\.[^\]]*)?\]\s*(?:#.*)?')


def with_node(text: str, name: str, address: HostPort) -> str:
    """``text`` with a ``[nodes.<name>]`` table at ``address`` (host, Raft port) appended."""
    check_node_name(name)
    if any(_node_header(name).fullmatch(line) for line in text.splitlines()):
        raise ConfigError(f"the cluster file already has a node {name!r}")
    host = address.host
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,253}", host):
        raise ConfigError(f"node address {host!r} is not a host name or IP address")
    table = f'[nodes.{name}]\naddress = "{host}"\nraft_port = {address.port}\n'
    return text.rstrip("\n") + "\n\n" + table


def without_node(text: str, name: str) -> str:
    """``text`` without the tables of node ``name`` (``[nodes.<name>]`` and its subtables)."""
    check_node_name(name)
    header = _node_header(name)
    kept: list[str] = []
    inside = found = False
    for line in text.splitlines(keepends=True):
        if _HEADER.match(line):
            inside = bool(header.fullmatch(line.rstrip("\n")))
            found = found or inside
        if not inside:
            kept.append(line)
    if not found:
        raise ConfigError(
            f"the cluster file has no [nodes.{name}] table to remove (written inline?): "
            "remove the node by hand and run `hakeeper config apply`"
        )
    return re.sub(r"\n{3,}", "\n\n", "".join(kept))
