"""The whole way back, with real processes: a three-node loopback cluster running a session
store is backed up (`hakeeper backup create`, while writers put unique session keys; its
controller takes scheduled ones too), stopped, and every node's state deleted; `hakeeper
restore` brings it up on fresh data directories and other addresses with the same config
(but the new addresses), the same run-time state, the resource where that state puts it,
and the session store holding exactly the backup's snapshot: a consistent cut of the
writers' acknowledged history. `hakeeper dr drill` of that backup reads its keys back.

One module-scoped run (`way_back`) does it all and records what the tests check."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from hakeeper.backup.keys import write_key_file
from hakeeper.config import load_spec
from hakeeper.lab.loopback import LoopbackCluster, free_port_on
from hakeeper.lab.processes import free_port
from hakeeper.model.records import NodeFlags
from hakeeper.runtime.observed import Observed
from hakeeper.runtime.store import ClusterStore
from hakeeper.runtime.store_records import ClusterRecords
from hakeeper.sessions.client import SessionClient
from hakeeper.sessions.snapshot import SnapshotHeader
from tests.backup.session_writers import (
    Contents,
    Writers,
    backup_snapshot,
    client_address,
    store_agent,
    store_contents,
    writer_prefixes,
)

pytestmark = pytest.mark.slow

RESOURCES = """
[resources.svc]
agent = "process"
params = { command = "/bin/sleep 1000" }
ops.monitor = { interval = "1s", timeout = "5s" }
"""
NEW_HOSTS = ("127.0.0.21", "127.0.0.22", "127.0.0.23")
#: Keys written before the backup (every third with a TTL), besides the writers'.
PRESET = 300


def sessions_resource() -> str:
    """A session store on the three lab nodes, proving the cluster's own secret."""
    port = free_port("127.0.0.11")
    peer_port = next(p for p in (free_port("127.0.0.11") for _ in range(20)) if p != port)
    return f"""
[resources.store]
agent = "sessions"
params = {{ port = {port}, peer_port = {peer_port}, memory = "32m", \
nodes = {{ n1 = "127.0.0.11", n2 = "127.0.0.12", n3 = "127.0.0.13" }} }}
ops.monitor = {{ interval = "1s", timeout = "10s" }}

[clones.sessions]
resource = "store"
promotable = true
"""


def backup_section(tmp_path: Path) -> str:
    return (
        f'\n[backup]\nstore = "{tmp_path / "backups"}"\nkey_file = "{tmp_path / "backup.key"}"\n'
        'schedule = "2s"\n'
    )


async def scheduled_backups(store: ClusterStore, count: int, timeout: float = 60.0) -> list[float]:
    """The times of the first ``count`` scheduled backups the controller took."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e.ts for e in await store.event_log("test").read() if e.kind == "backup.created"]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.5)
    raise AssertionError(f"fewer than {count} scheduled backups within {timeout}s")


async def hakeeper(*args: str) -> dict[str, object]:
    """Run the real CLI in its own process; its --json answer."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hakeeper", *args, "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(120):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, f"hakeeper {' '.join(args)}: {out.decode()} {err.decode()}"
    data: dict[str, object] = json.loads(out)
    return data


@dataclass(frozen=True)
class BackedUp:
    """The old cluster, as it was backed up while writers ran, then destroyed."""

    backup_id: str
    raft_port: int
    scheduled: list[float]
    before: ClusterRecords
    preset: Contents
    acked_before_backup: list[int]  # per writer, when `backup create` began
    acked_after_backup: list[int]  # per writer, once it ended (the writers stopped)


@dataclass(frozen=True)
class Restored:
    """The cluster restored on other addresses and fresh data directories."""

    summary: dict[str, object]
    after: ClusterRecords
    config: str
    standby_n2: bool
    sessions: Contents
    store_hosts: set[str]


@dataclass(frozen=True)
class WayBack:
    tmp: Path
    old: BackedUp
    new: Restored
    snapshot_header: SnapshotHeader
    snapshot: Contents  # the store's snapshot in the backup


async def preset_keys(address: str) -> Contents:
    written: Contents = {}
    async with SessionClient(address, timeout=30.0) as client:
        for i in range(PRESET):
            key, value, ttl = b"pre-%d" % i, b"preset %d" % i, 3600 if i % 3 == 0 else 0
            assert await client.set(key, value, flags=7, exptime=ttl) == b"STORED"
            written[key] = (value, 7, float(ttl))
    return written


def store_off_n2(o: Observed) -> bool:
    return o.running_on("svc") == ["n3"] and sorted(o.running_on("store")) == ["n1", "n3"]


async def back_up_and_destroy(tmp: Path) -> BackedUp:
    old = LoopbackCluster(tmp / "old", RESOURCES + sessions_resource() + backup_section(tmp))
    try:
        await old.start()
        await old.wait_for("svc to run", lambda o: bool(o.running_on("svc")))
        store = await old.store()
        # Only the controller takes them, one per period: never three at once.
        times = await scheduled_backups(store, 2)
        await store.set_constraint("ban", "svc", "n1")
        await store.set_node_flags("n2", NodeFlags(standby=True))
        await old.wait_for("svc on n3, the store off standby n2", store_off_n2)
        address = await client_address(store_agent(old.spec, "store"))
        preset = await preset_keys(address)
        await store.records().identity()  # made now, so that `before` holds it
        before = await store.records().read()
        writers = Writers(address)
        writers.start()
        try:
            await asyncio.sleep(0.5)
            acked_before = list(writers.acked)
            taken = await hakeeper("backup", "create", "--config", str(old.config_path))
            await asyncio.sleep(0.5)
        finally:
            acked_after = await writers.stop()
    finally:
        await old.close()
    for node in old.names:
        shutil.rmtree(old.state_dir(node))
    return BackedUp(
        str(taken["backup_id"]), old.spec.nodes[0].raft_port, times, before, preset,
        acked_before, acked_after,
    )  # fmt: skip


async def restore_elsewhere(tmp: Path, old: BackedUp) -> Restored:
    new = LoopbackCluster(tmp / "new", RESOURCES)
    try:
        port = free_port_on(list(NEW_HOSTS))
        assert port != old.raft_port
        new.address = dict(zip(new.names, NEW_HOSTS, strict=True))
        mapping = [f"--map={n}={new.address[n]}:{port}" for n in new.names]
        await hakeeper(
            "restore", old.backup_id, "--store", str(tmp / "backups"),
            "--key-file", str(tmp / "backup.key"), *mapping,
            "--write-config", str(new.config_path), "--force",
        )  # fmt: skip
        new.spec = load_spec(new.config_path)
        await new.start()
        summary = await hakeeper(
            "restore", old.backup_id, "--config", str(new.config_path), *mapping
        )
        restored = await new.wait_for("svc on n3, the store off n2", store_off_n2, timeout=120)
        agent = store_agent(new.spec, "store")
        return Restored(
            summary=summary,
            after=await (await new.store()).records().read(),
            config=new.config_path.read_text(),
            standby_n2=restored.state.node("n2").standby,
            sessions=await store_contents(agent),
            store_hosts=set(agent.nodes.values()),
        )
    finally:
        await new.close()


async def run_way_back(tmp: Path) -> WayBack:
    write_key_file(tmp / "backup.key")
    old = await back_up_and_destroy(tmp)
    new = await restore_elsewhere(tmp, old)
    header, snapshot = await backup_snapshot(
        tmp / "backups", tmp / "backup.key", old.backup_id, "store"
    )
    return WayBack(tmp, old, new, header, snapshot)


@pytest.fixture(scope="module")
def way_back(tmp_path_factory: pytest.TempPathFactory) -> WayBack:
    return asyncio.run(run_way_back(tmp_path_factory.mktemp("way-back")))


def test_only_the_controller_takes_scheduled_backups_one_per_period(way_back: WayBack) -> None:
    assert all(b - a >= 1.5 for a, b in itertools.pairwise(way_back.old.scheduled))


def test_restore_on_fresh_dirs_and_other_addresses_gives_the_same_config_and_state(
    way_back: WayBack,
) -> None:
    assert way_back.new.summary["records"] == 2
    assert way_back.new.after.runtime == way_back.old.before.runtime
    assert way_back.new.after.identity == way_back.old.before.identity
    assert way_back.new.after.config == way_back.new.config
    assert set(way_back.old.before.events) <= set(way_back.new.after.events)
    assert way_back.new.standby_n2
    assert way_back.new.store_hosts == set(NEW_HOSTS)  # the store followed its nodes


def test_the_restored_session_store_holds_exactly_the_backups_snapshot(
    way_back: WayBack,
) -> None:
    assert way_back.new.summary["sessions"] == {"store": way_back.snapshot_header.keys}
    assert len(way_back.snapshot) == way_back.snapshot_header.keys
    assert way_back.new.sessions == way_back.snapshot


def test_the_snapshot_under_writers_is_a_cut_of_their_acknowledged_history(
    way_back: WayBack,
) -> None:
    snapshot = way_back.snapshot
    # The keys set before the backup, each with its value, flags and TTL.
    for key, (value, flags, ttl) in way_back.old.preset.items():
        got_value, got_flags, expiry = snapshot[key]
        assert (got_value, got_flags) == (value, flags)
        assert (expiry > time.time()) if ttl else expiry == 0
    writers = len(way_back.old.acked_before_backup)
    for writer, js in enumerate(writer_prefixes(snapshot, writers)):
        # One cut: a prefix of what the writer wrote, one key after another...
        assert js == list(range(len(js))), f"writer {writer}: a torn snapshot"
        # ... holding every write acknowledged before the backup began, none never written.
        assert way_back.old.acked_before_backup[writer] <= len(js)
        assert len(js) <= way_back.old.acked_after_backup[writer]
        for j in js:
            key = Writers.key(writer, j)
            assert snapshot[key][:2] == (Writers.value(writer, j), writer)
    assert sum(way_back.old.acked_after_backup) > sum(way_back.old.acked_before_backup)
    assert len(snapshot) == PRESET + sum(len(js) for js in writer_prefixes(snapshot, writers))


def test_a_drill_of_the_backup_reads_its_session_keys_back_equal(way_back: WayBack) -> None:
    tmp = way_back.tmp
    where = ["--store", str(tmp / "backups"), "--key-file", str(tmp / "backup.key")]
    drill = hakeeper("dr", "drill", way_back.old.backup_id, *where, "--no-event")
    report = asyncio.run(drill)
    assert report["ok"] is True, report
    assert report["sessions"] == {"store": way_back.snapshot_header.keys}
    checks = report["session_checks"]
    assert isinstance(checks, list)
    assert [c["store"] for c in checks] == ["store"]
    assert checks[0]["checked"] == checks[0]["equal"] > 0
    assert checks[0]["mismatch"] == ""
    phases = report["phases"]
    assert isinstance(phases, dict)
    assert list(phases) == ["read backup", "quorum", "restore", "resources", "session read-back"]
