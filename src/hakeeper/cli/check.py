"""`hakeeper check`: is this configuration safe to run? (shared/DESIGN.md section 4)

Exit 0: nothing unsafe (warnings may be printed); 1: at least one error-level finding;
2: the file itself is invalid.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hakeeper.cli import cluster_client as cc
from hakeeper.cli.cluster_client import ConfigOption, JsonOption
from hakeeper.cluster.safety_checks import Finding, safety_findings
from hakeeper.config import load, warnings
from hakeeper.config.loader import to_spec
from hakeeper.errors import ConfigError

console = Console(soft_wrap=True)


def findings_for(config: str) -> list[Finding]:
    cf = load(config)
    found = [Finding("warning", text, "") for text in warnings(cf)]
    return found + safety_findings(to_spec(cf))


def check(
    config: ConfigOption = cc.DEFAULT_CONFIG,
    as_json: JsonOption = False,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 on warnings too.")] = False,
) -> None:
    """Check the cluster file for unsafe settings: fencing, quorum, lease and watchdog timing."""
    try:
        found = findings_for(str(config))
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps([asdict(f) for f in found], indent=2))
    elif not found:
        console.print(f"{config}: nothing unsafe found", highlight=False)
    else:
        table = Table("level", "finding", "fix", show_lines=True)
        for f in found:
            style = "bold red" if f.level == "error" else "yellow"
            table.add_row(f"[{style}]{f.level}[/]", f.what, f.fix)
        console.print(table)
    failing = {"error", "warning"} if strict else {"error"}
    raise typer.Exit(1 if any(f.level in failing for f in found) else 0)
