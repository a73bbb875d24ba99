"""`hakeeper init [DIR]`: a starter cluster file and a new cluster secret, to edit and copy.

With ``--node NAME=ADDRESS`` (once per node) it is the deployment walkthrough: the file names
those nodes and the secret where they keep it, and the commands to put everything in place
on each node are printed (`hakeeper.cli.init_nodes`). ``--install-unit`` installs the
systemd unit on this machine and writes nothing else.

Writes ``DIR/cluster.toml`` (three nodes at placeholder addresses, the secret named by its
absolute path, one example resource, a fence device to fill in) and ``DIR/secret`` (a new
random secret, mode 0600). Neither is ever overwritten: when either exists, nothing at all
is written and the command exits 1 saying so. The next steps it prints are commands that
run as printed.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from hakeeper.cli.init_nodes import (
    NODE_ETC,
    UNIT_DIR,
    NodePlan,
    install_unit,
    node_env,
    nodes_toml,
    parse_nodes,
    running_executable,
    walkthrough,
)
from hakeeper.config.secret_file import create_private_file, write_secret_file
from hakeeper.errors import ConfigError

CONFIG_NAME = "cluster.toml"
SECRET_NAME = "secret"

#: 192.0.2.0/24 is TEST-NET-1 (RFC 5737): documentation only, never a real host, so a
#: placeholder left unedited cannot reach some machine by accident.
STARTER = """\
# A starter cluster file written by `hakeeper init`; docs/config.md has every key.
# Every node runs `hakeeper agent` with this same file. Edit what is marked EDIT.

[cluster]
name = "hakeeper"            # EDIT: one name per cluster (its key-space prefix)
profile = "default"          # fast | default | wan: timeouts, leases, elections
fencing = true               # a lost node is fenced before its resources run elsewhere
failback = "auto"            # auto | manual

[coordination]
backend = "raft"             # embedded Raft among the nodes below; nothing else to run
raft_port = 7480
# The cluster secret, by path: every node holds the same file there, mode 0600. Its first
# line is what a node proves itself with, every line is accepted (rotation without restart).
# Never put the secret itself in this file: the config is replicated to every node.
secret_file = {secret}

{nodes}
# EDIT: an example resource, a floating IP address that runs on one node at a time.
[resources.vip]
agent = "vip"
params = {{ ip = "192.0.2.100", cidr = 24 }}
ops.monitor = {{ interval = "2s" }}

# EDIT: how a lost node is proven off (docs/fencing.md). Until a device is configured, a
# lost node's exclusive resources wait for `hakeeper fence --confirm NODE`. For example,
# one IPMI controller per node, its password read from a root-only script:
#
# [fencing.devices.ipmi]
# agent = "fence_ipmilan"
# params = {{ username = "admin", password_script = "/etc/hakeeper/ipmi-pass" }}
# hosts = {{ n1 = "192.0.2.21", n2 = "192.0.2.22", n3 = "192.0.2.23" }}
# kind = "power"
"""


PLACEHOLDER_NODES = """\
# EDIT: your nodes; 192.0.2.x are placeholders. A node's address is where the others
# reach it (Raft on raft_port); three nodes keep quorum through one failure.
[nodes.n1]
address = "192.0.2.11"

[nodes.n2]
address = "192.0.2.12"

[nodes.n3]
address = "192.0.2.13"
"""


def starter_config(secret_file: Path, nodes: list[NodePlan] | None = None) -> str:
    """The starter cluster file naming ``secret_file`` (absolute) as the cluster secret, and
    ``nodes`` (placeholders when None)."""
    # A TOML literal string holds any path without escapes, but not a quote or a newline.
    if "'" in str(secret_file) or "\n" in str(secret_file):
        raise ConfigError(
            f"{secret_file}: a path with a quote or a newline cannot be named in the cluster "
            "file; choose another directory"
        )
    listed = PLACEHOLDER_NODES
    if nodes:
        listed = "# A node's address is where the others reach it (Raft on raft_port).\n"
        listed += nodes_toml(nodes)
    return STARTER.format(secret=f"'{secret_file}'", nodes=listed)


def next_steps(config: Path, secret: Path) -> str:
    c = shlex.quote(str(config))
    return f"""\
wrote {config} (a starter cluster file) and {secret} (the cluster secret, mode 0600)

next steps:
  1. edit {config}:
     the node names and addresses (192.0.2.x are placeholders), the resources, and a
     fence device (see its fencing section)
  2. check it; each of these runs as it is:
       hakeeper config validate {c}
       hakeeper check --config {c}
       hakeeper plan {c}
  3. copy both files to the same paths on every node; the secret must stay mode 0600 and
     owned by the user the agent runs as (scp -p keeps the mode)
  4. start the agent on every node with this file and the node's own name from it
     (README, "Running a cluster")
"""


def init(
    directory: Annotated[
        Path, typer.Argument(help="Where to write cluster.toml and secret (made if missing).")
    ] = Path("."),
    node: Annotated[
        list[str] | None,
        typer.Option(
            "--node",
            help="NAME=ADDRESS of a node, once per node: write their files and print the "
            "commands that deploy them.",
        ),
    ] = None,
    install_unit_: Annotated[
        bool,
        typer.Option(
            "--install-unit",
            help="Install the systemd unit on this machine (as root) and write nothing else.",
        ),
    ] = False,
    unit_dir: Annotated[
        Path, typer.Option(help="Where --install-unit writes hakeeper.service.")
    ] = UNIT_DIR,
) -> None:
    """Write a starter cluster file and a new cluster secret (mode 0600); never overwrites."""
    if install_unit_:
        _install_unit(unit_dir)
        return
    try:
        nodes = parse_nodes(node or [])
    except ConfigError as exc:
        typer.echo(f"hakeeper init: {exc}", err=True)
        raise typer.Exit(2) from exc
    # Absolute: every node reads the secret from this same path, whatever its working dir.
    target = directory.absolute()
    config, secret = target / CONFIG_NAME, target / SECRET_NAME
    present = [p for p in (config, secret) if p.exists() or p.is_symlink()]
    if present:
        names = " and ".join(str(p) for p in present)
        typer.echo(
            f"hakeeper init: {names} exist{'s' if len(present) == 1 else ''} already; nothing "
            "was written (init never overwrites: remove them first, or choose another "
            "directory; to change the secret of a running cluster use `hakeeper secret rotate`)",
            err=True,
        )
        raise typer.Exit(1)
    try:
        # Deployed, the nodes keep the secret in /etc/hakeeper; otherwise it stays here.
        named = NODE_ETC / SECRET_NAME if nodes else secret
        text = starter_config(named, nodes)
        # Made 0700: the directory holds the secret.
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_secret_file(secret)
        try:
            # Mode 0600 too: a cluster file may come to name fence credentials.
            create_private_file(config, text, exists=f"{config}: exists already")
            _write_node_envs(target, nodes)
        except BaseException:
            secret.unlink()  # ours, just written: leave nothing half-done
            config.unlink(missing_ok=True)
            raise
    except (ConfigError, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        typer.echo(f"hakeeper init: cannot write in {target}: {reason}", err=True)
        raise typer.Exit(1) from exc
    if nodes:
        typer.echo(walkthrough(target, nodes))
    else:
        typer.echo(next_steps(config, secret), nl=False)


def _write_node_envs(target: Path, nodes: list[NodePlan]) -> None:
    if not nodes:
        return
    folder = target / "nodes"
    folder.mkdir(mode=0o700, exist_ok=True)
    for plan in nodes:
        path = folder / f"{plan.name}.env"
        create_private_file(path, node_env(plan), exists=f"{path}: exists already")


def _install_unit(unit_dir: Path) -> None:
    try:
        path, changed = install_unit(unit_dir, running_executable())
    except (ConfigError, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        typer.echo(f"hakeeper init --install-unit: cannot write in {unit_dir}: {reason}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{'wrote' if changed else 'unchanged:'} {path}")
    typer.echo("next: systemctl daemon-reload && systemctl enable --now hakeeper.service")
