"""Files' modes after a real agent run: nothing in a node's state dir is readable by others.

The state dir holds the Raft journal and dump (the whole key space, fence parameters
included), the last good config and the resources' logs. Each test runs a real three-node
loopback cluster and asserts that others can read nothing there (the attack, reading it as
another user, fails), that the agents still run, and that a normal change still succeeds.
"""

from __future__ import annotations

import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hakeeper.config.file_modes import open_entries
from hakeeper.lab.loopback import LoopbackCluster

pytestmark = pytest.mark.slow

RESOURCES = f"""
[resources.app]
agent = "process"
params = {{ command = ["{sys.executable}", "-c", "import time; time.sleep(600)"] }}
exclusive = false
ops.monitor = {{ interval = "2s", timeout = "10s" }}

[clones.app-clone]
resource = "app"
"""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[LoopbackCluster]:
    cluster = LoopbackCluster(tmp_path, RESOURCES)
    try:
        await cluster.start()
        await cluster.wait_for("app on every node", lambda o: o.running_on("app") == cluster.names)
        yield cluster
    finally:
        await cluster.close()


async def add_a_resource(lab: LoopbackCluster) -> None:
    coord = await lab.coordinator()
    extra = '\n[resources.extra]\nagent = "ocf:heartbeat:Dummy"\n'
    await coord.put(lab.keys.config, (lab.config_path.read_text() + extra).encode())
    await lab.wait_for("the new resource to start", lambda o: len(o.running_on("extra")) == 1)


async def test_after_a_run_nothing_in_a_state_dir_is_readable_by_others(
    lab: LoopbackCluster,
) -> None:
    for node in lab.names:
        state = lab.state_dir(node)
        assert mode(state) == 0o700
        journal = sorted((state / "raft").glob("raft.journal*"))
        assert journal, sorted(p.name for p in (state / "raft").iterdir())
        assert all(mode(p) == 0o600 for p in journal)
        assert mode(state / "agents" / "app.log") == 0o600
        assert mode(state / "cluster.toml") == 0o600  # the last good config
        assert open_entries(state) == [], node
    assert all(lab.running(n) for n in lab.names)
    await add_a_resource(lab)


async def test_a_state_dir_left_open_is_tightened_at_start(tmp_path: Path) -> None:
    cluster = LoopbackCluster(tmp_path, RESOURCES)
    state = cluster.state_dir("n1")
    (state / "raft").mkdir(parents=True)
    old = state / "raft" / "leftover.dump"
    old.write_text("a copy of the key space")
    state.chmod(0o755)
    (state / "raft").chmod(0o755)
    old.chmod(0o644)
    try:
        await cluster.start()
        await cluster.wait_for("app on every node", lambda o: o.running_on("app") == cluster.names)
        assert (mode(state), mode(state / "raft"), mode(old)) == (0o700, 0o700, 0o600)
        assert open_entries(state) == []
        assert "event=state_dir_tightened" in cluster.tails(400)
        assert all(cluster.running(n) for n in cluster.names)
        await add_a_resource(cluster)
    finally:
        await cluster.close()
