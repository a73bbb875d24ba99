"""The whole way back, with real processes: a three-node loopback cluster is backed up
(`hakeeper backup create`; its controller takes scheduled ones too), stopped, and every
node's state deleted; `hakeeper restore` brings it up on fresh data directories and other
ports with the same config (but the new addresses), the same run-time state, and the
resource where that state puts it."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from hakeeper.backup.keys import write_key_file
from hakeeper.config import load_spec
from hakeeper.lab.loopback import LoopbackCluster
from hakeeper.model.records import NodeFlags
from hakeeper.runtime.store import ClusterStore

pytestmark = pytest.mark.slow

RESOURCES = """
[resources.svc]
agent = "process"
params = { command = "/bin/sleep 1000" }
ops.monitor = { interval = "1s", timeout = "5s" }
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
    assert proc.returncode == 0, f"hakeeper {' '.join(args)}: {err.decode()}"
    data: dict[str, object] = json.loads(out)
    return data


async def test_backup_destroy_restore_on_fresh_dirs_and_other_ports(tmp_path: Path) -> None:
    write_key_file(tmp_path / "backup.key")
    old = LoopbackCluster(tmp_path / "old", RESOURCES + backup_section(tmp_path))
    try:
        await old.start()
        await old.wait_for("svc to run", lambda o: bool(o.running_on("svc")))
        store = await old.store()
        # Only the controller takes them, one per period: never three at once.
        times = await scheduled_backups(store, 2)
        assert all(b - a >= 1.5 for a, b in itertools.pairwise(times))
        await store.set_constraint("ban", "svc", "n1")
        await store.set_node_flags("n2", NodeFlags(standby=True))
        await old.wait_for("svc on n3", lambda o: o.running_on("svc") == ["n3"])
        await store.records().identity()  # made now, so that `before` holds it
        before = await store.records().read()
        taken = await hakeeper("backup", "create", "--config", str(old.config_path))
    finally:
        await old.close()
    for node in old.names:
        shutil.rmtree(old.state_dir(node))

    new = LoopbackCluster(tmp_path / "new", RESOURCES)
    try:
        port = new.spec.nodes[0].raft_port
        assert port != old.spec.nodes[0].raft_port
        mapping = [f"--map={n}={new.address[n]}:{port}" for n in new.names]
        backup_id = str(taken["backup_id"])
        await hakeeper(
            "restore", backup_id, "--store", str(tmp_path / "backups"),
            "--key-file", str(tmp_path / "backup.key"), *mapping,
            "--write-config", str(new.config_path), "--force",
        )  # fmt: skip
        new.spec = load_spec(new.config_path)
        await new.start()
        summary = await hakeeper("restore", backup_id, "--config", str(new.config_path), *mapping)
        assert summary["records"] == 2
        restored = await new.wait_for("svc on n3", lambda o: o.running_on("svc") == ["n3"])
        after = await (await new.store()).records().read()
        assert after.runtime == before.runtime
        assert after.identity == before.identity
        assert after.config == new.config_path.read_text()
        assert set(before.events) <= set(after.events)
        assert restored.state.node("n2").standby
    finally:
        await new.close()
