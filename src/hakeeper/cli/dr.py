"""`hakeeper dr drill`: restore a backup into a scratch cluster on this machine and measure.

The drill reads and checks the whole backup, rewrites its config for this machine (nodes on
loopback with a free port, the scratch cluster's own secret, fencing and the watchdog off so
that nothing touches the real machines), starts one real agent per node on fresh state
directories, restores the run-time state (and the session stores, through the seam), and
waits until the cluster has quorum and its resources run as the restored state says; then
it reads a sample of each session store's keys from the backup's snapshot and gets them from
the restored store (`dr_sessions`): a key missing or different fails the drill, named. It
reports the RTO (from the start of the restore until the service answers), the RPO (the age
of the backup's data when the restore began) and how long each step took, as a
``drill.finished`` event in the cluster's log (which ``hakeeper availability report`` shows)
and on screen. The backup's resources run on this machine during the drill: run it on a
host meant for it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Annotated, Protocol

import typer
from rich.console import Console

from hakeeper.backup.manifest import Trust
from hakeeper.backup.node_map import (
    NodeTarget,
    rewrite_node_addresses,
    set_resource_params,
    set_table_keys,
)
from hakeeper.backup.restore import RestorePlan, apply_restore, prepare_restore
from hakeeper.backup.scheduled import stored_file, stored_settings
from hakeeper.backup.session_seam import SessionReseeder, session_object
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
)
from hakeeper.cli.cluster_client import ConfigOption, JsonOption
from hakeeper.cli.dr_sessions import (
    SessionCheck,
    SessionReader,
    check_store,
    failures,
    sample_snapshot,
)
from hakeeper.cli.session_backup import AGENT as SESSIONS_AGENT
from hakeeper.cli.session_backup import SessionStores
from hakeeper.config.loader import spec_from_text, to_spec
from hakeeper.config.schema import ClusterFile
from hakeeper.errors import ConfigError, HakeeperError
from hakeeper.lab.cluster_secret import lab_secret_file
from hakeeper.lab.loopback import free_port_on
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


class DrillSessions(SessionReseeder, SessionReader, Protocol):
    """The session stores of the scratch cluster: reseeded, then read back."""


SessionsOf = Callable[[ClusterSpec], DrillSessions | None]


@dataclass(frozen=True, slots=True)
class DrillResult:
    backup_id: str
    ok: bool
    rto: float  # s, restore start → service answers (to the failure when not ok)
    rpo: float  # s, the backup's age when the restore began
    reason: str = ""
    running: dict[str, list[str]] = field(default_factory=dict)
    sessions: dict[str, int] = field(default_factory=dict)
    session_checks: tuple[SessionCheck, ...] = ()
    phases: dict[str, float] = field(default_factory=dict)  # step → seconds (those done)

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
        lines.extend(check.line() for check in self.session_checks)
        if self.phases:
            took = ", ".join(f"{phase} {secs:.1f} s" for phase, secs in self.phases.items())
            lines.append(f"  took: {took}")
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
    config = set_table_keys(config, safety, add_missing=True)
    # A session store's nodes moved to loopback with the nodes (`rewrite_node_addresses`);
    # its ports become free ones (the real store may run on this host) and it proves the
    # scratch secret, not the real cluster's.
    taken = {port}
    for primitive in spec.primitives:
        if primitive.agent == SESSIONS_AGENT:
            ports = [_free_port(list(addresses.values()), taken) for _ in range(2)]
            updates: dict[str, object] = {"port": ports[0], "peer_port": ports[1]}
            if "secret_file" in primitive.params:
                updates["secret_file"] = str(secret_file)
            config = set_resource_params(config, primitive.id, updates)
    return config


def _free_port(addresses: list[str], taken: set[int]) -> int:
    """A port free on every one of ``addresses`` and not in ``taken`` (which it joins)."""
    for _ in range(50):
        port = free_port_on(addresses)
        if port not in taken:
            taken.add(port)
            return port
    raise OSError(f"no port free on all of {addresses} besides {sorted(taken)}")


async def _until_quorum(store: ClusterStore) -> None:
    """Until the scratch cluster has quorum and one of its daemons has published its config:
    each publishes at start, and a restore that read "no config" while that publication was
    on its way would be refused as a config applied meanwhile."""
    while True:
        if await store.has_quorum() and await store.config_record() is not None:
            return
        await asyncio.sleep(POLL)


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


class _Clock:
    """How long each step of a drill took, the steps done so far."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.phases[name] = round(time.monotonic() - started, 3)


async def _check_sessions(
    plan: RestorePlan, sessions: DrillSessions | None
) -> tuple[SessionCheck, ...]:
    """A sample of each restored store's keys, as the backup's snapshot holds them, read back."""
    if sessions is None:
        return ()
    checks = []
    for name in plan.session_stores:
        chunks = plan.reader.read_object(session_object(name))
        sample = await sample_snapshot(chunks, seed=f"{plan.manifest.backup_id}/{name}")
        checks.append(await check_store(sessions, name, sample))
    return tuple(checks)


async def run_drill(
    backups: BackupStore,
    backup_id: str,
    trust: Trust,
    work_dir: Path,
    *,
    sessions_of: SessionsOf | None = None,
    timeout: float = DRILL_TIMEOUT,
) -> DrillResult:
    """Restore ``backup_id`` into a scratch cluster under ``work_dir`` and measure; the
    scratch cluster is stopped before this returns, whatever happened."""
    started, began = time.monotonic(), time.time()
    rpo = 0.0
    clock = _Clock()
    try:
        async with asyncio.timeout(timeout):
            with clock.phase("read backup"):
                plan = await prepare_restore(
                    backups, backup_id, trust, cluster_name=None, node_map={}
                )
                rpo = began - plan.manifest.created_at.timestamp()
                config = scratch_config(plan.records.config or "", backup_id, work_dir)
                plan = replace(plan, records=replace(plan.records, config=config))
            scratch = ScratchCluster(work_dir, config)
            try:
                with clock.phase("quorum"):
                    scratch.start()
                    store = await scratch.store()
                    await _until_quorum(store)
                sessions = sessions_of(scratch.spec) if sessions_of is not None else None
                with clock.phase("restore"):
                    summary = await apply_restore(plan, store, reseeder=sessions, force=False)
                with clock.phase("resources"):
                    running = await _until_serving(store, scratch.spec)
                rto = time.monotonic() - started
                with clock.phase("session read-back"):
                    checks = await _check_sessions(plan, sessions)
            finally:
                await scratch.close()
    except TimeoutError:
        reason = f"the service did not answer within {timeout:g} s"
        return DrillResult(
            backup_id, False, time.monotonic() - started, rpo, reason, phases=clock.phases
        )
    except (HakeeperError, OSError, ValueError) as exc:
        # A drill that fails is a result to report (and an event), not a crash; ValueError:
        # a session snapshot that does not decode.
        return DrillResult(
            backup_id, False, time.monotonic() - started, rpo, str(exc), phases=clock.phases
        )
    failed = failures(checks, summary.sessions_skipped)
    return DrillResult(
        backup_id, not failed, rto, rpo, failed, running=running,
        sessions=dict(summary.sessions), session_checks=checks, phases=clock.phases,
    )  # fmt: skip


class ScheduledDrill:
    """A `ControllerJob`: a drill of the newest backup each ``[backup] drill`` period."""

    name = "drill"

    def __init__(self, sessions: SessionsOf | None = None) -> None:
        self._sessions = sessions

    async def period(self, store: ClusterStore) -> float | None:
        cf = await stored_file(store)
        return cf.backup.drill if cf is not None and cf.backup is not None else None

    async def run(self, store: ClusterStore, spec: ClusterSpec) -> Event:
        cf = await stored_file(store)
        if cf is None or cf.backup is None:
            raise ConfigError("the stored config has no [backup] section any more")
        settings = await stored_settings(cf)
        result = await drill_in_temp(settings, "latest", self._sessions)
        if not result.ok:
            raise HakeeperError(f"drill of backup {result.backup_id} failed: {result.reason}")
        return result.event(time.time())


async def drill_in_temp(
    settings: BackupSettings, backup: str, sessions_of: SessionsOf | None, keep: Path | None = None
) -> DrillResult:
    """A drill in a fresh temporary directory (removed afterwards), or in ``keep``."""
    backup_id = await resolve_id(settings, backup)
    work = keep or Path(tempfile.mkdtemp(prefix="hakeeper-drill-"))
    try:
        return await run_drill(
            settings.store, backup_id, settings.trust(), work, sessions_of=sessions_of
        )
    finally:
        if keep is None:
            await asyncio.to_thread(shutil.rmtree, work, ignore_errors=True)


def drill_sessions(spec: ClusterSpec) -> DrillSessions | None:
    """The scratch cluster's session stores (none: its config runs none)."""
    stores = SessionStores(spec)
    return stores if stores.store_names() else None


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
        result = await drill_in_temp(loaded.settings, backup, drill_sessions, work_dir)
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
