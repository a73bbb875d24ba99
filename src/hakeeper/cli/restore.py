"""`hakeeper restore BACKUP`: bring a cluster back from a backup, on other machines if need be.

Two steps, because the key space lives in the running nodes' Raft group:

1. ``hakeeper restore BACKUP --store … --key-file … --map n1=10.0.0.21 … --write-config
   FILE``: read and check the whole backup, write its config with the nodes' new addresses
   to FILE; nothing else is touched (a new site needs no cluster file for this).
2. Start ``hakeeper agent --config FILE`` on every node (fresh data directories), then
   ``hakeeper restore BACKUP --config FILE --map …``: check the backup again, refuse a live
   cluster unless ``--force``, seed the run-time state and the event log, reseed the session
   stores; the controller then starts the resources as the restored state says.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from hakeeper.api import hints
from hakeeper.backup.node_map import parse_node_map
from hakeeper.backup.restore import RestorePlan, RestoreSummary, apply_restore, prepare_restore
from hakeeper.cli import cluster_client as cc
from hakeeper.cli.backup import (
    BackupArg,
    KeyFileOption,
    StoreOption,
    load_settings,
    resolve_id,
    run_local,
    session_seam,
)
from hakeeper.cli.backup_view import progress_view
from hakeeper.cli.cluster_client import ConfigOption, JsonOption
from hakeeper.coord.base import Coordinator
from hakeeper.errors import ConfigError, HakeeperError
from hakeeper.model.cluster import ClusterSpec

# Lines hold paths, URLs and errors: "[" in them is text, never markup.
console = Console(soft_wrap=True, highlight=False, markup=False)

MapOption = Annotated[
    list[str] | None,
    typer.Option("--map", help="NODE=HOST or NODE=HOST:RAFT_PORT: where a node runs now."),
]


def summary_json(summary: RestoreSummary) -> dict[str, Any]:
    return {
        "backup_id": summary.backup_id,
        "cluster": summary.cluster,
        "config_written": summary.config_written,
        "records": summary.records,
        "events": summary.events,
        "sessions": dict(summary.sessions),
        "sessions_skipped": list(summary.sessions_skipped),
        "seconds": round(summary.seconds, 3),
    }


def _write_config(plan: RestorePlan, path: Path, force: bool) -> None:
    """The restored config, created 0644 (it holds no secret); an existing file is kept
    unless ``force``."""
    text = plan.records.config or ""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        raise ConfigError(f"{path} exists: name another file, or add --force") from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def restore(
    backup: BackupArg,
    config: ConfigOption = cc.DEFAULT_CONFIG,
    node_map: MapOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite a live cluster's run-time state.")
    ] = False,
    write_config: Annotated[
        Path | None,
        typer.Option("--write-config", help="Only write the restored config to this file."),
    ] = None,
    store: StoreOption = None,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Restore BACKUP (an id, or 'latest') into the cluster, or write its config first."""
    entries = list(node_map or ())
    if write_config is not None:

        async def first_step() -> int:
            loaded = load_settings(config, store, key_file)
            settings = loaded.settings
            backup_id = await resolve_id(settings, backup)
            name = loaded.file.cluster.name if loaded.file else None
            with progress_view(not as_json) as view:
                plan = await prepare_restore(
                    settings.store, backup_id, settings.trust(), cluster_name=name,
                    node_map=parse_node_map(entries), progress=view,
                )  # fmt: skip
            _write_config(plan, write_config, force)
            hints.use_config(write_config)
            words = ["restore", backup_id, *(f"--map={e}" for e in entries)]
            words += [f"--store={store}"] if store else []
            words += [f"--key-file={key_file}"] if key_file else []
            nxt = hints.hakeeper(*words)
            if as_json:
                typer.echo(json.dumps({"backup_id": backup_id, "config": str(write_config),
                                       "next": nxt}))  # fmt: skip
                return 0
            console.print(f"backup {backup_id} is sound; its config is in {write_config}")
            console.print(f"next: start every node's agent with --config {write_config} on "
                          "fresh data directories, then run:")  # fmt: skip
            console.print(f"  {nxt}")
            return 0

        run_local("restore", first_step)
        return

    try:
        loaded = load_settings(config, store, key_file, need_file=True)
        targets = parse_node_map(entries)
    except HakeeperError as exc:
        typer.echo(f"hakeeper restore: {exc}", err=True)
        raise typer.Exit(2) from exc

    async def body(coord: Coordinator, spec: ClusterSpec) -> int:
        settings = loaded.settings
        backup_id = await resolve_id(settings, backup)
        _, reseeder = session_seam(spec)
        with progress_view(not as_json) as view:
            plan = await prepare_restore(
                settings.store, backup_id, settings.trust(), cluster_name=spec.options.name,
                node_map=targets, progress=view,
            )  # fmt: skip
            summary = await apply_restore(
                plan, cc.store_of(coord, spec), reseeder=reseeder, force=force
            )
        if as_json:
            typer.echo(json.dumps(summary_json(summary), indent=1))
            return 0
        for line in summary.lines():
            console.print(line)
        console.print(f"next: {hints.hakeeper('status')}")
        return 0

    cc.run_command("restore", config, body, in_force=False)
