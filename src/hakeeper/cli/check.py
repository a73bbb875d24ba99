"""`hakeeper check`: is this configuration safe to run, and is this host secure?

Two sections. *safety* (shared/DESIGN.md section 4, rules 1-3): fencing, quorum, lease and
watchdog timing. *security* (rule 6): the cluster secret missing, unreadable or open to
others, cluster state others can read, etcd without TLS beyond loopback; each with its fix as
a command. The security section is a list of sources (`SECURITY_SOURCES`), each a function
of a `CheckContext`, so that other components (the balancer's API, etcd's own settings)
add theirs in one place.

Exit 0: nothing unsafe (warnings may be printed); 1: at least one error-level finding;
2: the file itself is invalid.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hakeeper.api.security_checks import api_findings
from hakeeper.backup.health import backup_findings
from hakeeper.balancer.config import insecure_settings
from hakeeper.balancer.config import load_config as load_balancer_config
from hakeeper.cli import cluster_client as cc
from hakeeper.cli.cluster_client import ConfigOption, JsonOption
from hakeeper.config import load, warnings
from hakeeper.config.loader import to_spec
from hakeeper.config.schema import ClusterFile
from hakeeper.errors import ConfigError
from hakeeper.model.cluster import ClusterSpec
from hakeeper.runtime.safety_checks import Finding, safety_findings
from hakeeper.runtime.security_checks import (
    DEFAULT_STATE_ROOT,
    alert_findings,
    etcd_findings,
    fence_password_findings,
    secret_findings,
    state_findings,
)

console = Console(soft_wrap=True)


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What a security source may look at: the validated file (with its ``balancer`` and
    ``sessions`` tables), the plain spec, and where the agents keep their state."""

    file: ClusterFile
    spec: ClusterSpec
    state_root: Path


SecuritySource = Callable[[CheckContext], list[Finding]]


def _secret(ctx: CheckContext) -> list[Finding]:
    return secret_findings(ctx.spec)


def _state(ctx: CheckContext) -> list[Finding]:
    return state_findings(ctx.state_root)


def _etcd_transport(ctx: CheckContext) -> list[Finding]:
    return etcd_findings(ctx.spec)


def _fence_passwords(ctx: CheckContext) -> list[Finding]:
    return fence_password_findings(ctx.spec)


def _alerts(ctx: CheckContext) -> list[Finding]:
    return alert_findings(ctx.spec)


def _balancer_apis(ctx: CheckContext) -> list[Finding]:
    """Each balancer resource's own file: its runtime API's bind and token."""
    found: list[Finding] = []
    for prim in ctx.spec.primitives:
        if prim.agent != "balancer" or "config" not in prim.params:
            continue
        path = Path(str(prim.params["config"]))
        try:
            problems = insecure_settings(load_balancer_config(path))
        except ConfigError as exc:
            found.append(Finding("error", f"balancer {prim.id}: {exc}", "fix the balancer file"))
            continue
        for problem in problems:
            what, _, fix = problem.partition(" (fix: ")
            found.append(Finding("warning", f"balancer {prim.id} ({path}): {what}", fix[:-1]))
    return found


def _rest_api(ctx: CheckContext) -> list[Finding]:
    return api_findings(ctx.file.api, [n.name for n in ctx.spec.nodes])


#: Every source of the security section, in the order they are shown.
SECURITY_SOURCES: tuple[SecuritySource, ...] = (
    _secret,
    _state,
    _etcd_transport,
    _fence_passwords,
    _balancer_apis,
    _alerts,
    _rest_api,
)


@dataclass(frozen=True, slots=True)
class Section:
    name: str  # "safety" | "security" | "backup"
    finding: Finding


def all_findings(
    config: str,
    state_root: Path = DEFAULT_STATE_ROOT,
    sources: Sequence[SecuritySource] = SECURITY_SOURCES,
) -> list[Section]:
    cf = load(config)
    spec = to_spec(cf)
    found = [Section("safety", Finding("warning", text, "")) for text in warnings(cf)]
    found += [Section("safety", f) for f in safety_findings(spec)]
    ctx = CheckContext(cf, spec, state_root)
    found += [Section("security", f) for source in sources for f in source(ctx)]
    # Backups encrypted and on schedule, read from their store (docs/dr.md).
    found += [Section("backup", f) for f in asyncio.run(backup_findings(cf))]
    return found


def check(
    config: ConfigOption = cc.DEFAULT_CONFIG,
    as_json: JsonOption = False,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 on warnings too.")] = False,
    state_dir: Annotated[
        Path,
        typer.Option(help="Where the agents keep their state (checked for open modes)."),
    ] = DEFAULT_STATE_ROOT,
) -> None:
    """Check the cluster file for unsafe settings (fencing, quorum, lease and watchdog timing)
    and this host for insecure ones (cluster secret, state dir, etcd transport)."""
    try:
        found = all_findings(str(config), state_dir)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps([{**asdict(s.finding), "section": s.name} for s in found], indent=2))
    elif not found:
        console.print(f"{config}: nothing unsafe found, nothing insecure found", highlight=False)
    else:
        table = Table("section", "level", "finding", "fix", show_lines=True)
        for s in found:
            style = "bold red" if s.finding.level == "error" else "yellow"
            # Escaped: a fix may name a table such as [coordination], which is not markup.
            what, fix = escape(s.finding.what), escape(s.finding.fix)
            table.add_row(s.name, f"[{style}]{s.finding.level}[/]", what, fix)
        console.print(table)
    failing = {"error", "warning"} if strict else {"error"}
    raise typer.Exit(1 if any(s.finding.level in failing for s in found) else 0)
