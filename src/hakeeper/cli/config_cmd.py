"""`hakeeper config validate FILE`: check a cluster file without touching the cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hakeeper.config import load, warnings
from hakeeper.errors import ConfigError

app = typer.Typer(help="The cluster file: validate it (docs/config.md is the reference).")


@app.command()
def validate(
    path: Annotated[Path, typer.Argument(help="the cluster file (TOML)")],
) -> None:
    """Validate the file: schema, references, cycles. Exit 2 and list every problem if bad."""
    try:
        cf = load(path)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    for warning in warnings(cf):
        typer.echo(f"{path}: warning: {warning}", err=True)
    c = cf.constraints
    constraints = len(c.location) + len(c.colocation) + len(c.order)
    typer.echo(
        f"{path}: valid — cluster {cf.cluster.name!r}, {len(cf.nodes)} nodes, "
        f"{len(cf.resources)} resources, groups: {len(cf.groups)}, clones: {len(cf.clones)}, "
        f"{constraints} constraints, coordination {cf.coordination.backend}, "
        f"profile {cf.cluster.profile}"
    )
