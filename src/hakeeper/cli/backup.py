"""`hakeeper backup create|list|verify|prune`: backups of the cluster (docs/dr.md).

``create`` reads the cluster through a client (one revision of its kept records, each
session store's snapshot) and writes one backup, then prunes by the retention; ``list``,
``verify`` and ``prune`` need only the store (and the key, to verify), not the cluster.
Progress goes to stderr; stdout holds the one-screen summary, or JSON with ``--json``.
Exit statuses: 0 done / sound; 1 verify found problems; 2 refused or failed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hakeeper.api import hints
from hakeeper.backup.catalog import BackupListing, list_backups, prune
from hakeeper.backup.jobs import TakenBackup, take_backup
from hakeeper.backup.session_seam import SessionReseeder, SessionSnapshotter
from hakeeper.backup.settings import BackupSettings, backup_settings
from hakeeper.backup.verify import VerifyReport, verify_backup
from hakeeper.cli import cluster_client as cc
from hakeeper.cli.backup_view import progress_view
from hakeeper.cli.cluster_client import ConfigOption, JsonOption
from hakeeper.cli.session_backup import SessionStores
from hakeeper.config.loader import load
from hakeeper.config.schema import ClusterFile
from hakeeper.coord.base import Coordinator
from hakeeper.errors import ConfigError, HakeeperError
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.durations import short_duration

app = typer.Typer(help="Back up the cluster; list, verify and prune its backups.")
# Lines hold paths, URLs and errors: "[" in them is text, never markup.
console = Console(soft_wrap=True, highlight=False, markup=False)

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="A directory or s3://bucket/prefix (default: the store of the backup section).",
    ),
]
KeyFileOption = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        help="The backup key file, mode 0600 (default: key_file of the backup section).",
    ),
]
BackupArg = Annotated[str, typer.Argument(help="A backup id, or 'latest'.")]


def session_seam(spec: ClusterSpec) -> tuple[SessionSnapshotter | None, SessionReseeder | None]:
    """The session stores a backup takes and a restore reseeds, for ``spec``'s cluster: each
    ``agent = "sessions"`` resource, reached as its resource agent reaches it (none: the
    backup holds the cluster's records only)."""
    stores = SessionStores(spec)
    return (stores, stores) if stores.store_names() else (None, None)


@dataclass(frozen=True, slots=True)
class Loaded:
    """The local cluster file (None when there is none) and the backup settings."""

    file: ClusterFile | None
    settings: BackupSettings


def load_settings(
    config: Path, store: str | None, key_file: Path | None, *, need_file: bool = False
) -> Loaded:
    """The backup settings from ``config``'s [backup] section and the options. Without a
    cluster file (a new site), ``--store`` (and ``--key-file``) say where."""
    hints.use_config(config)
    cf: ClusterFile | None = None
    if need_file or config.exists():
        cf = load(config)
    secret = Path(cf.coordination.secret_file) if cf is not None else None
    settings = backup_settings(
        cf.backup if cf else None, store=store, key_file=key_file, cluster_secret=secret
    )
    return Loaded(cf, settings)


def run_local(name: str, body: Callable[[], Coroutine[Any, Any, int]]) -> None:
    """Run a command that needs no cluster: its exit status, or 2 with one line on stderr."""
    try:
        code = asyncio.run(body())
    except HakeeperError as exc:
        typer.echo(f"hakeeper {name}: {exc}", err=True)
        raise typer.Exit(2) from exc
    raise typer.Exit(code)


async def resolve_id(settings: BackupSettings, backup: str) -> str:
    """``latest`` → the newest complete backup's id; any other text is the id."""
    if backup != "latest":
        return backup
    newest = (await list_backups(settings.store)).newest
    if newest is None:
        raise ConfigError(
            f"no backup in {settings.store.description} yet (take one: "
            f"{hints.hakeeper('backup', 'create')})"
        )
    return newest.backup_id


def print_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=1, default=str))


# --- create ------------------------------------------------------------------------------------


def taken_json(taken: TakenBackup) -> dict[str, Any]:
    s = taken.summary
    return {
        "backup_id": s.backup_id,
        "store": s.store,
        "cluster": s.cluster.model_dump(),
        "coord_revision": taken.revision,
        "epochs": taken.epochs,
        "objects": s.objects,
        "bytes": s.bytes,
        "stored_bytes": s.stored_bytes,
        "key_id": s.key_id,
        "seconds": round(s.seconds, 3),
        "pruned": list(taken.pruned.deleted) if taken.pruned else [],
        "left_out": [{"key": key, "error": error} for key, error in taken.refused],
    }


@app.command()
def create(
    config: ConfigOption = cc.DEFAULT_CONFIG,
    store: StoreOption = None,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Back up the cluster: config, run-time state, events, session stores."""
    try:
        loaded = load_settings(config, store, key_file, need_file=True)
    except HakeeperError as exc:
        typer.echo(f"hakeeper backup create: {exc}", err=True)
        raise typer.Exit(2) from exc

    async def body(coord: Coordinator, spec: ClusterSpec) -> int:
        sessions, _ = session_seam(spec)
        with progress_view(not as_json) as view:
            taken = await take_backup(
                cc.store_of(coord, spec),
                spec.options.name,
                loaded.settings,
                sessions=sessions,
                progress=view,
            )
        if as_json:
            print_json(taken_json(taken))
            return 0
        for line in taken.summary.lines():
            console.print(line)
        if loaded.settings.keyring is None:
            console.print("  warning:    not encrypted (set [backup] key_file)")
        if taken.pruned is not None:
            console.print(f"  pruned:     {len(taken.pruned.deleted)} older backup(s)")
        for key, error in taken.refused:
            # The cluster leaves such a record out where it reads it, and so does the backup.
            console.print(f"  left out:   {key}: {error}", markup=False)
        return 0

    cc.run_command("backup create", config, body)


# --- list --------------------------------------------------------------------------------------


def listing_json(listing: BackupListing) -> dict[str, Any]:
    return {
        "store": listing.store,
        "backups": [
            {
                "backup_id": b.backup_id,
                "created_at": b.created_at.isoformat(),
                "age_seconds": round(b.age.total_seconds(), 1),
                "bytes": b.size,
                "objects": b.objects,
                "cluster": b.cluster.model_dump(),
                "encrypted": b.encrypted,
            }
            for b in listing.backups
        ],
        "unreadable": [
            {"backup_id": u.backup_id, "problem": u.problem} for u in listing.unreadable
        ],
        "in_progress": list(listing.in_progress),
    }


@app.command(name="list")
def list_command(
    config: ConfigOption = cc.DEFAULT_CONFIG,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """The backups in the store, newest first."""

    async def body() -> int:
        loaded = load_settings(config, store, None)
        listing = await list_backups(loaded.settings.store)
        if as_json:
            print_json(listing_json(listing))
            return 0
        table = Table(title=f"backups in {listing.store}")
        for column in ("id", "created (UTC)", "age", "bytes", "objects", "cluster", "encrypted"):
            table.add_column(column)
        for b in listing.backups:
            table.add_row(
                b.backup_id, b.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                short_duration(b.age.total_seconds()), str(b.size), str(b.objects),
                f"{b.cluster.name} ({b.cluster.cluster_id[:8]}…)", "yes" if b.encrypted else "NO",
            )  # fmt: skip
        console.print(table)
        for u in listing.unreadable:
            console.print(f"unreadable: {u.backup_id}: {u.problem}")
        for backup_id in listing.in_progress:
            console.print(f"in progress (or abandoned): {backup_id}")
        return 0

    run_local("backup list", body)


# --- verify ------------------------------------------------------------------------------------


def report_json(report: VerifyReport) -> dict[str, Any]:
    return {
        "backup_id": report.backup_id,
        "store": report.store,
        "ok": report.ok,
        "objects_checked": report.objects_checked,
        "bytes_checked": report.bytes_checked,
        "problems": list(report.problems),
        "seconds": round(report.seconds, 3),
    }


@app.command()
def verify(
    backup: BackupArg = "latest",
    config: ConfigOption = cc.DEFAULT_CONFIG,
    store: StoreOption = None,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Read a backup back in full and check every byte (exit 1 when it is not sound)."""

    async def body() -> int:
        settings = load_settings(config, store, key_file).settings
        backup_id = await resolve_id(settings, backup)
        with progress_view(not as_json) as view:
            report = await verify_backup(settings.store, backup_id, settings.trust(), progress=view)
        if as_json:
            print_json(report_json(report))
        else:
            for line in report.lines():
                console.print(line)
        return 0 if report.ok else 1

    run_local("backup verify", body)


# --- prune -------------------------------------------------------------------------------------


@app.command(name="prune")
def prune_command(
    config: ConfigOption = cc.DEFAULT_CONFIG,
    store: StoreOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would go.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete the backups that keep_last and max_age (backup section) no longer keep."""

    async def body() -> int:
        settings = load_settings(config, store, None).settings
        policy = settings.retention
        if policy.keep_last is None and policy.max_age is None:
            raise ConfigError('no retention: set keep_last = N and/or max_age = "30d" in [backup]')
        result = await prune(settings.store, policy, dry_run=dry_run)
        if as_json:
            print_json({"deleted": list(result.deleted), "kept": list(result.kept),
                        "dry_run": dry_run})  # fmt: skip
            return 0
        verb = "would delete" if dry_run else "deleted"
        console.print(f"{verb} {len(result.deleted)}, kept {len(result.kept)}")
        for backup_id in result.deleted:
            console.print(f"  {verb}: {backup_id}")
        return 0

    run_local("backup prune", body)
