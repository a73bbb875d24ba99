"""`hakeeper balance --config balancer.toml`: run the load balancer on its own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hakeeper.balancer.main_loop import run_file
from hakeeper.balancer.worker_supervisor import run_workers
from hakeeper.cli.logs import setup_logging
from hakeeper.errors import HakeeperError


def balance(
    config: Annotated[Path, typer.Option(help="The balancer file (TOML), see docs/balancer.md.")],
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes sharing the ports (SO_REUSEPORT); the parent runs the "
            "checks and the API and tells every worker.",
        ),
    ] = 1,
    log_level: Annotated[str, typer.Option(help="debug, info, warning.")] = "info",
) -> None:
    """Run the L4/L7 load balancer until SIGTERM or SIGINT; SIGHUP reloads the file."""
    setup_logging(log_level)
    try:
        if workers > 1:
            run_workers(config, workers)
        else:
            run_file(config)
    except HakeeperError as exc:
        typer.echo(f"hakeeper balance: {exc}", err=True)
        raise typer.Exit(2) from exc
