"""`hakeeper agent`: run this node's agent."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hakeeper.api.server import api_face
from hakeeper.backup.scheduled import ScheduledBackup
from hakeeper.cli.backup import session_seam
from hakeeper.cli.dr import ScheduledDrill, drill_sessions
from hakeeper.cli.logs import setup_logging
from hakeeper.cli.plugins import RESOURCE_AGENTS
from hakeeper.config.loader import load, load_spec
from hakeeper.errors import HakeeperError
from hakeeper.runtime.connect import require_cluster_secret
from hakeeper.runtime.daemon import run_daemon
from hakeeper.runtime.memory_lock import lock_memory


def agent(
    config: Annotated[Path, typer.Option(help="The cluster file (TOML).")],
    node: Annotated[str, typer.Option(help="This node's name in the cluster file.")],
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Raft log and agent state (default /var/lib/hakeeper/<node>)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning.")] = "info",
    api_listen: Annotated[
        str | None,
        typer.Option(help="host:port of this node's REST API (default [api] listen_on/listen)."),
    ] = None,
    join: Annotated[
        bool,
        typer.Option(
            "--join",
            help="A new node of a running cluster: join the Raft group as a learner and "
            "vote once `hakeeper node add` made it a member (fresh state directory).",
        ),
    ] = False,
) -> None:
    """Run the hakeeper agent of one node, and its REST API, until SIGTERM or SIGINT."""
    setup_logging(log_level)
    lock_memory()
    try:
        # Checked before the agent makes its state dir or arms a watchdog (a "nowayout"
        # driver cannot be disarmed): a node without its cluster secret starts nothing.
        require_cluster_secret(load_spec(config))
        state_dir = state_dir or Path("/var/lib/hakeeper") / node
        # Only the controller runs these, once per period for the whole cluster.
        jobs = (
            ScheduledBackup(sessions=lambda spec: session_seam(spec)[0]),
            ScheduledDrill(sessions=drill_sessions),
        )
        faces = api_face(load(config).api, node, api_listen)
        run_daemon(
            config, node, state_dir, agents=RESOURCE_AGENTS, jobs=jobs, faces=faces, join=join
        )
    except HakeeperError as exc:
        typer.echo(f"hakeeper agent: {exc}", err=True)
        raise typer.Exit(2) from exc
