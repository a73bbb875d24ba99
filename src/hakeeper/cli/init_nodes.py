"""The deployment half of `hakeeper init`: N nodes' files and commands, and the systemd unit.

``hakeeper init DIR --node n1=10.0.0.1 --node n2=...`` writes the cluster file for those
nodes (naming the secret where the nodes keep it, ``/etc/hakeeper/secret``), the secret, and
one ``nodes/<name>.env`` per node (``HAKEEPER_NODE=<name>``, what the unit reads), then
prints, per node, the commands that put them in place over ssh and start the daemon.

``hakeeper init --install-unit`` (on a node, as root) writes the unit shipped with this
package (``deploy/hakeeper.service``) to ``/etc/systemd/system/hakeeper.service``, with
``ExecStart`` naming the ``hakeeper`` that runs the command.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from hakeeper.errors import ConfigError

#: Where every node keeps its files (the CLI's default config lives here too).
NODE_ETC = Path("/etc/hakeeper")
UNIT_NAME = "hakeeper.service"
UNIT_DIR = Path("/etc/systemd/system")
#: The path the shipped unit names; --install-unit puts the running hakeeper's there.
UNIT_EXECUTABLE = "/usr/local/bin/hakeeper"

_NODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
# A host name, IPv4 or IPv6 address: no spaces, quotes or anything a shell or TOML reads.
_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:-]{0,252}")


@dataclass(frozen=True, slots=True)
class NodePlan:
    name: str
    address: str


def parse_nodes(values: list[str]) -> list[NodePlan]:
    """``NAME=ADDRESS`` each; names unique, both plain (they reach TOML and shell lines)."""
    nodes: list[NodePlan] = []
    for value in values:
        name, sep, address = value.partition("=")
        if not sep or not _NODE.fullmatch(name) or not _HOST.fullmatch(address):
            raise ConfigError(
                f"--node {value!r}: give NAME=ADDRESS, e.g. --node n1=10.0.0.1 (names: "
                "letters, digits, '_', '-', '.'; the address where the other nodes reach it)"
            )
        if any(n.name == name for n in nodes):
            raise ConfigError(f"--node {name}: named twice; each node once")
        nodes.append(NodePlan(name, address))
    return nodes


def nodes_toml(nodes: list[NodePlan]) -> str:
    return "\n".join(f'[nodes.{n.name}]\naddress = "{n.address}"\n' for n in nodes)


def node_env(node: NodePlan) -> str:
    return (
        "# Read by hakeeper.service: this machine's name in the cluster file.\n"
        f"HAKEEPER_NODE={node.name}\n"
    )


def walkthrough(directory: Path, nodes: list[NodePlan]) -> str:
    """The commands, per node, from this machine (root over ssh), each runnable as printed."""
    q = shlex.quote
    config, secret = q(str(directory / "cluster.toml")), q(str(directory / "secret"))
    etc = str(NODE_ETC)
    lines = [
        f"wrote {directory}/cluster.toml (nodes {', '.join(n.name for n in nodes)}), "
        f"{directory}/secret (mode 0600) and {directory}/nodes/<node>.env",
        "",
        f"1. edit {directory}/cluster.toml: the resources (a VIP example is in it) and a "
        "fence device",
        "2. on every node, hakeeper installed (docs/deploy.md), run from here:",
    ]
    for node in nodes:
        host = f"root@{node.address}"
        env = q(str(directory / "nodes" / f"{node.name}.env"))
        lines += [
            f"   # {node.name}",
            f"   ssh {host} install -d -m 0700 {etc}",
            f"   scp -p {config} {secret} {host}:{etc}/",
            f"   scp -p {env} {host}:{etc}/node.env",
            f"   ssh {host} hakeeper check",
            f"   ssh {host} hakeeper init --install-unit",
            f"   ssh {host} systemctl enable --now {UNIT_NAME}",
        ]
    first = f"root@{nodes[0].address}"
    lines += [
        "3. watch the cluster form (quorum with a majority of the nodes):",
        f"   ssh -t {first} hakeeper status --watch",
        "",
    ]
    return "\n".join(lines)


def unit_text(executable: str) -> str:
    """The shipped unit with ``ExecStart`` naming ``executable``."""
    if not executable.startswith("/") or not re.fullmatch(r"[\w./+-]+", executable):
        raise ConfigError(
            f"{executable!r}: the unit needs an absolute path of plain characters to "
            f"hakeeper; install it there, or link it: ln -s PATH {UNIT_EXECUTABLE}"
        )
    shipped = files("hakeeper.cli").joinpath(UNIT_NAME).read_text(encoding="utf-8")
    return shipped.replace(f"ExecStart={UNIT_EXECUTABLE} ", f"ExecStart={executable} ")


def running_executable() -> str:
    """The ``hakeeper`` script beside this Python (a venv's bin), else the one on PATH."""
    beside = Path(sys.executable).parent / "hakeeper"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return UNIT_EXECUTABLE


def install_unit(unit_dir: Path, executable: str) -> tuple[Path, bool]:
    """Write the unit (mode 0644) into ``unit_dir``; (its path, whether it changed)."""
    path = unit_dir / UNIT_NAME
    text = unit_text(executable)
    try:
        if path.read_text(encoding="utf-8") == text:
            return path, False
    except FileNotFoundError:
        pass
    scratch = path.with_name(f".{UNIT_NAME}.new")
    scratch.write_text(text, encoding="utf-8")
    scratch.chmod(0o644)
    os.replace(scratch, path)
    return path, True
