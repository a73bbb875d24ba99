"""`hakeeper dr drill`: restore a backup into a scratch cluster on this machine and measure.

The drill reads and checks the whole backup, rewrites its config for this machine (nodes on
loopback with a free port, the scratch cluster's own secret, fencing and the watchdog off so
that nothing touches the real machines), starts one real agent per node on fresh state
directories, restores the run-time state (and the session stores, through the seam), and
waits until the cluster has quorum and its resources run as the restored state says. It
reports the RTO (from the start of the restore until the service answers) and the RPO (the
age of the backup's data when the restore began), as a ``drill.finished`` event in the
cluster's log (which ``hakeeper availability report`` shows) and on screen. The backup's
resources run on this machine during the drill: run it on a host meant for it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hakeeper.backup.manifest import Trust
from hakeeper.backup.node_map import NodeTarget, rewrite_node_addresses, set_table_keys
from hakeeper.backup.restore import apply_restore, prepare_restore
from hakeeper.backup.scheduled import stored_file, stored_settings
from hakeeper.backup.session_seam import SessionReseeder
from hakeeper.backup.settings import BackupSettings
from hakeeper.backup.store import BackupStore
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
from hakeeper.cli.cluster_client import ConfigOption, JsonOption
from hakeeper.config.loader import spec_from_text, to_spec
from hakeeper.config.schema import ClusterFile
from hakeeper.errors import ConfigError, HakeeperError
from hakeeper.lab.cluster_secret import lab_secret_file
from hakeeper.lab.scratch import ScratchCluster, loopback_nodes
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.events import DrillFinished, Event
from hakeeper.runtime.snapshot import observe_cluster
from hakeeper.runtime.store import ClusterStore

app = typer.Typer(help="Disaster recovery: restore drills that measure RTO and RPO.")
# Lines hold paths, URLs and errors: "[" in them is text, never markup.
console = Console(soft_wrap=True, highlight=False, markup=False)

#: The whole drill, from the first read of the backup to the service answering.
DRILL_TIMEOUT = 300.0
POLL = 0.5

Reseeders = Callable[[ClusterSpec], SessionReseeder | None]


@dataclass(frozen=True, slots=True)
class DrillResult:
    backup_id: str
    ok: bool
    rto: float  # s, restore start → service answers (to the failure when not ok)
    rpo: float  # s, the backup's age when the restore began
    reason: str = ""
    running: dict[str, list[str]] = field(default_factory=dict)
    sessions: dict[str, int] = field(default_factory=dict)

    def event(self, ts: float) -> DrillFinished:
        return DrillFinished(
            ts=ts, backup_id=self.backup_id, ok=self.ok, rto=round(self.rto, 3),
            rpo=round(self.rpo, 1), reason=self.reason[:500],
        )  # fmt: skip

    def lines(self) -> tuple[str, ...]:
        verdict = "PASSED" if self.ok else f"FAILED: {self.reason}"
        lines = [f"drill of backup {self.backup_id}: {verdict}"]
        lines.append(f"  RTO: {self.rto:.1f} s (restore start → service answers)")
        lines.append(f"  RPO: {self.rpo:.0f} s (age of the backup's data)")
        for resource, nodes in sorted(self.running.items()):
            lines.append(f"  running: {resource} on {', '.join(nodes) or 'nothing'}")
        for store, keys in sorted(self.sessions.items()):
            lines.append(f"  sessions: {store}: {keys} keys reseeded")
        return tuple(lines)


def scratch_config(config: str, backup_id: str, work_dir: Path) -> str:
    """The backup's config for this machine: nodes on loopback, the scratch secret, no
    fencing and no watchdog (the drill must never touch the real machines), virtual IPs
    stopped (never on the real network), and its own backups in the scratch directory, not
    scheduled (never into the real store, never a drill within the drill)."""
    secret_file = lab_secret_file(work_dir)
    spec = spec_from_text(config, f"the config of backup {backup_id}")
    if spec.coordination.backend != "raft":
        raise ConfigError("a drill runs the embedded raft backend; this backup's config uses etcd")
    addresses, port = loopback_nodes([n.name for n in spec.nodes])
    targets = {name: NodeTarget(address, port) for name, address in addresses.items()}
    config = rewrite_node_addresses(config, targets)
    safety: dict[str, dict[str, str]] = {
        "cluster": {"fencing": "false"},
        "fencing": {"watchdog": '"off"'},
        "coordination": {"secret_file": json.dumps(str(secret_file))},
        "backup": {
            "store": json.dumps(str(work_dir / "backups")),
            "schedule": '"3650d"',
            "drill": '"3650d"',
        },
    }
    # A virtual IP raised here would answer on the real network beside the real one.
    for primitive in spec.primitives:
        if primitive.agent == "vip":
            safety[f"resources.{primitive.id}"] = {"target_role": '"stopped"'}
    return set_table_keys(config, safety, add_missing=True)


async def _until_serving(store: ClusterStore, spec: ClusterSpec) -> dict[str, list[str]]:
    """Poll until the controller has done everything the restored state asks (only
    monitors left to do) and no instance has failed; where each resource runs."""
    while True:
        with_quorum = await store.has_quorum()
        if with_quorum:
            snap = await observe_cluster(store, spec, time.time())
            settled = all(a.kind == "monitor" for a in snap.transition().actions)
            failed = [s for s in snap.observed.statuses if s.role == "failed"]
            if settled and not failed and snap.observed.members == {n.name for n in spec.nodes}:
                return {p.id: snap.observed.running_on(p.id) for p in spec.primitives}
        await asyncio.sleep(POLL)


async def run_drill(
    backups: BackupStore,
    backup_id: str,
    trust: Trust,
    work_dir: Path,
    *,
    reseeders: Reseeders | None = None,
    timeout: float = DRILL_TIMEOUT,
) -> DrillResult:
    """Restore ``backup_id`` into a scratch cluster under ``work_dir`` and measure; the
    scratch cluster is stopped before this returns, whatever happened."""
    started, began = time.monotonic(), time.time()
    rpo = 0.0
    try:
        async with asyncio.timeout(timeout):
            plan = await prepare_restore(backups, backup_id, trust, cluster_name=None, node_map={})
            rpo = began - plan.manifest.created_at.timestamp()
            config = scratch_config(plan.records.config or "", backup_id, work_dir)
            plan = replace(plan, records=replace(plan.records, config=config))
            scratch = ScratchCluster(work_dir, config)
            try:
                scratch.start()
                store = await scratch.store()
                reseeder = reseeders(scratch.spec) if reseeders is not None else None
                summary = await apply_restore(plan, store, reseeder=reseeder, force=False)
                running = await _until_serving(store, scratch.spec)
            finally:
                await scratch.close()
    except TimeoutError:
        reason = f"the service did not answer within {timeout:g} s"
        return DrillResult(backup_id, False, time.monotonic() - started, rpo, reason)
    except (HakeeperError, OSError) as exc:
        # A drill that fails is a result to report (and an event), not a crash.
        return DrillResult(backup_id, False, time.monotonic() - started, rpo, str(exc))
    return DrillResult(
        backup_id, True, time.monotonic() - started, rpo,
        running=running, sessions=dict(summary.sessions),
    )  # fmt: skip


class ScheduledDrill:
    """A `ControllerJob`: a drill of the newest backup each ``[backup] drill`` period."""

    name = "drill"

    def __init__(self, reseeders: Reseeders | None = None) -> None:
        self._reseeders = reseeders

    async def period(self, store: ClusterStore) -> float | None:
        cf = await stored_file(store)
        return cf.backup.drill if cf is not None and cf.backup is not None else None

    async def run(self, store: ClusterStore, spec: ClusterSpec) -> Event:
        cf = await stored_file(store)
        if cf is None or cf.backup is None:
            raise ConfigError("the stored config has no [backup] section any more")
        settings = await stored_settings(cf)
        result = await drill_in_temp(settings, "latest", self._reseeders)
        if not result.ok:
            raise HakeeperError(f"drill of backup {result.backup_id} failed: {result.reason}")
        return result.event(time.time())


async def drill_in_temp(
    settings: BackupSettings, backup: str, reseeders: Reseeders | None, keep: Path | None = None
) -> DrillResult:
    """A drill in a fresh temporary directory (removed afterwards), or in ``keep``."""
    backup_id = await resolve_id(settings, backup)
    work = keep or Path(tempfile.mkdtemp(prefix="hakeeper-drill-"))
    try:
        return await run_drill(
            settings.store, backup_id, settings.trust(), work, reseeders=reseeders
        )
    finally:
        if keep is None:
            await asyncio.to_thread(shutil.rmtree, work, ignore_errors=True)


def _reseeders(spec: ClusterSpec) -> SessionReseeder | None:
    return session_seam(spec)[1]


@app.command()
def drill(
    backup: BackupArg = "latest",
    config: ConfigOption = cc.DEFAULT_CONFIG,
    store: StoreOption = None,
    key_file: KeyFileOption = None,
    work_dir: Annotated[
        Path | None,
        typer.Option("--work-dir", help="Keep the scratch cluster's files here (new dir)."),
    ] = None,
    no_event: Annotated[
        bool, typer.Option("--no-event", help="Do not write the result to the cluster's log.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Restore BACKUP into a scratch cluster here; check it serves; report RTO and RPO."""

    async def body() -> int:
        loaded = load_settings(config, store, key_file)
        if work_dir is not None and work_dir.exists():
            raise ConfigError(f"--work-dir {work_dir} exists: name a new directory")
        if not as_json:
            console.print("restoring into a scratch cluster on this machine …")
        result = await drill_in_temp(loaded.settings, backup, _reseeders, work_dir)
        logged = "not written (--no-event)" if no_event else await _log(loaded.file, result)
        if as_json:
            typer.echo(json.dumps(asdict(result) | {"event": logged}, indent=1))
        else:
            for line in result.lines():
                console.print(line)
            console.print(f"  event: {logged}")
        return 0 if result.ok else 1

    run_local("dr drill", body)


async def _log(cf: ClusterFile | None, result: DrillResult) -> str:
    """Append the drill's event to the cluster's log; what happened, in words."""
    if cf is None:
        return "not written (no cluster file)"
    spec = to_spec(cf)
    try:
        async with cc.connected(spec) as coord:
            await cc.store_of(coord, spec).event_log("drill").append(result.event(time.time()))
    except HakeeperError as exc:
        return f"not written ({cc.describe(exc)})"
    return "written to the cluster's log (drill.finished)"
