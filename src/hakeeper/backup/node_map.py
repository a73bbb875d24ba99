"""Restoring onto other machines: the node map (``--map n1=10.0.0.21``) and the config it
rewrites.

A map entry is ``NODE=HOST`` or ``NODE=HOST:PORT`` (the port is the node's ``raft_port``).
The ``address`` and ``raft_port`` keys of ``[nodes.NODE]`` tables change, in place, and so
does every resource parameter that is a table of node addresses (a session store's
``params.nodes = { n1 = "10.0.0.1", ... }``: a table keyed by node names whose values are
those nodes' addresses), so the resources follow their nodes; the rest of the file
(comments, order, every other section) reads as it was backed up.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hakeeper.config.loader import spec_from_text
from hakeeper.errors import ConfigError
from hakeeper.model.address import split_address

_HOST = re.compile(r"[A-Za-z0-9_.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]")
_NODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# A table header such as [nodes.n1], [nodes."n1"] or [cluster]; [[arrays]] are not tables.
_HEADER = re.compile(r'^\s*\[(?!\[)\s*([A-Za-z0-9_."\s-]+?)\s*\]\s*(#.*)?$')
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
MAX_MAP = 1000


@dataclass(frozen=True, slots=True)
class NodeTarget:
    """Where a node of the backup runs now."""

    host: str
    raft_port: int | None = None


def parse_node_map(entries: Sequence[str]) -> dict[str, NodeTarget]:
    """``["n1=10.0.0.21", "n2=10.0.0.22:7481"]`` → targets; a ConfigError naming the entry."""
    if len(entries) > MAX_MAP:
        raise ConfigError(f"{len(entries)} --map entries; at most {MAX_MAP}")
    found: dict[str, NodeTarget] = {}
    for entry in entries:
        node, sep, target = entry.partition("=")
        if not sep or not _NODE.fullmatch(node):
            raise ConfigError(
                f"--map {entry!r}: write NODE=HOST or NODE=HOST:PORT, e.g. n1=10.0.0.21"
            )
        if node in found:
            raise ConfigError(f"--map names node {node!r} twice")
        if _HOST.fullmatch(target):
            found[node] = NodeTarget(target.strip("[]"))
            continue
        try:
            host_port = split_address(target)
        except ValueError as exc:
            raise ConfigError(f"--map {entry!r}: {exc}") from None
        found[node] = NodeTarget(host_port.host, host_port.port)
    return found


def _toml_string(text: str) -> str:
    # Hosts are checked above: letters, digits, ". _ - :" only, nothing to escape.
    return f'"{text}"'


def set_table_keys(
    config: str, tables: Mapping[str, Mapping[str, str]], *, add_missing: bool = False
) -> str:
    """``config`` with ``key = value`` (values already TOML) set in each named table
    (``"nodes.n1"``, ``"cluster"``), in place; a table the file lacks is appended when
    ``add_missing``, else a ConfigError names it."""
    out: list[str] = []
    current: str | None = None
    pending: dict[str, str] = {}
    done: set[str] = set()

    def flush() -> None:
        # Keys the table did not have yet go right after its last line.
        out.extend(f"{key} = {value}\n" for key, value in pending.items())
        pending.clear()

    for line in config.splitlines(keepends=True):
        header = _HEADER.match(line)
        if header:
            flush()
            current = header.group(1).replace('"', "").replace(" ", "")
            out.append(line if line.endswith("\n") else line + "\n")
            if current in tables:
                pending.update(tables[current])
                done.add(current)
            continue
        if line.lstrip().startswith("["):  # an [[array]] of tables ends the table too
            flush()
            current = None
            out.append(line)
            continue
        key = line.split("=", 1)[0].strip() if "=" in line else ""
        if current in tables and key in pending:
            out.append(f"{key} = {pending.pop(key)}\n")
            continue
        out.append(line)
    flush()
    missing = [t for t in tables if t not in done]
    if missing and not add_missing:
        raise ConfigError(
            f"the backed-up config does not define {', '.join(f'[{t}]' for t in missing)} "
            "as a table"
        )
    for table in missing:
        out.append(f"\n[{table}]\n")
        out.extend(f"{key} = {value}\n" for key, value in tables[table].items())
    return "".join(out)


def rewrite_node_addresses(config: str, targets: Mapping[str, NodeTarget]) -> str:
    """``config`` with each mapped node's ``address`` (and ``raft_port``) replaced, and its
    old address in every resource parameter that is a table of node addresses; the result
    is loaded to prove it, and a ConfigError says which node or resource could not be
    rewritten."""
    if not targets:
        return config
    tables: dict[str, dict[str, str]] = {}
    for node, target in targets.items():
        keys = tables[f"nodes.{node}"] = {"address": _toml_string(target.host)}
        if target.raft_port is not None:
            keys["raft_port"] = str(target.raft_port)
    old = spec_from_text(config, "backed-up config")
    try:
        text = set_table_keys(config, tables)
    except ConfigError:
        raise ConfigError(
            f"--map names node(s) {', '.join(sorted(targets))}; the backed-up config does not "
            "define each as a [nodes.NAME] table"
        ) from None
    old_addresses = {n.name: n.address for n in old.nodes}
    new_addresses = {n: t.host for n, t in targets.items()}
    text = _rewrite_address_params(text, old_addresses, new_addresses)
    spec = spec_from_text(text, "restored config")
    for node, target in targets.items():
        configured = spec.node(node)
        if configured is None or configured.address != target.host:
            raise ConfigError(f"the restored config's address of {node} could not be rewritten")
    return text


def _address_params(
    params: Mapping[str, object], old: Mapping[str, str], new: Mapping[str, str]
) -> dict[str, dict[str, str]]:
    """The params that are tables of node addresses, as they read with ``new``."""
    found: dict[str, dict[str, str]] = {}
    for key, value in params.items():
        if not isinstance(value, Mapping) or not value:
            continue
        if all(old.get(str(n)) == a for n, a in value.items()) and set(value) & set(new):
            found[key] = {str(n): new.get(str(n), str(a)) for n, a in value.items()}
    return found


def _rewrite_address_params(config: str, old: Mapping[str, str], new: Mapping[str, str]) -> str:
    """``config`` with every resource's node-address params moved from ``old`` to ``new``."""
    raw = tomllib.loads(config).get("resources", {})
    for resource, section in raw.items():
        params = section.get("params") if isinstance(section, dict) else None
        if isinstance(params, dict):
            moved = _address_params(params, old, new)
            if moved:
                config = set_resource_params(config, resource, moved)
    return config


def set_resource_params(config: str, resource: str, updates: Mapping[str, object]) -> str:
    """``config`` with params of ``[resources.RESOURCE]`` set to ``updates`` (values as
    tomllib reads them), where the file defines them: ``params = { ... }`` in the resource's
    table, keys of ``[resources.R.params]``, or keys of a ``[resources.R.params.P]`` table.
    The result is read back to prove it; a ConfigError names a form it cannot rewrite."""
    section = tomllib.loads(config).get("resources", {}).get(resource)
    if not isinstance(section, dict):
        raise ConfigError(f"the config has no resource {resource!r}")
    params = section.get("params", {})
    defined = _defined_keys(config)
    base = f"resources.{_key(resource)}"
    tables: dict[str, dict[str, str]] = {}
    for param, value in updates.items():
        nested = f"{base}.params.{_key(param)}"
        if nested in defined and isinstance(value, Mapping):
            tables[nested] = {_key(str(k)): _inline(v) for k, v in value.items()}
        elif f"{base}.params" in defined:
            tables.setdefault(f"{base}.params", {})[_key(param)] = _inline(value)
        elif "params" in defined.get(base, set()) or not params:
            tables.setdefault(base, {})["params"] = _inline(params | dict(updates))
    text = set_table_keys(config, tables) if tables else config
    after = tomllib.loads(text).get("resources", {}).get(resource, {}).get("params", {})
    if any(after.get(p) != v for p, v in updates.items()):
        raise ConfigError(
            f"resource {resource!r}: params {', '.join(sorted(updates))} are written in a form "
            "that cannot be rewritten here: write them as one line, params = { ... }, and run "
            "this again"
        )
    return text


def _defined_keys(config: str) -> dict[str, set[str]]:
    """Each table header of ``config`` (normalized as `set_table_keys` does) → its keys."""
    keys: dict[str, set[str]] = {}
    current = ""
    for line in config.splitlines():
        header = _HEADER.match(line)
        if header:
            current = header.group(1).replace('"', "").replace(" ", "")
            keys.setdefault(current, set())
        elif "=" in line and not line.lstrip().startswith(("#", "[")):
            keys.setdefault(current, set()).add(line.split("=", 1)[0].strip().strip('"'))
    return keys


def _key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name)


def _inline(value: object) -> str:
    """``value`` (as tomllib read it) as a one-line TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON's escapes are TOML's basic-string escapes
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_inline(v)}" for k, v in value.items()) + " }"
    raise ConfigError(f"a resource parameter of type {type(value).__name__} cannot be rewritten")
