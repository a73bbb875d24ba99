"""A rolling upgrade of a real three-node cluster between two Raft peer-wire versions.

The "older release" is this code with its wire capped at version 1 (``HAKEEPER_RAFT_WIRE_MAX``,
byte for byte the handshake of the releases before versions); the "newer" is this code
uncapped. ``hakeeper upgrade --rolling --json`` runs as the operator would run it; the test is
the installer: when the command asks for a node's restart, it stops that agent and starts it
uncapped. Throughout, a writer writes to the cluster store and an exclusive resource serves:
no acknowledged write is lost and the resource never has two holders.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from hakeeper.coord.raft_connection import WIRE_MAX_ENV
from hakeeper.errors import CoordError
from hakeeper.lab.holders import describe, overlaps
from hakeeper.lab.loopback import LoopbackCluster, free_port_on, read_records
from hakeeper.model.wire_version import SUPPORTED, Format
from hakeeper.runtime.record_codec import encode_store_format

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

WRITER_PREFIX = "/upgrade-test/"
ROLL_TIMEOUT = 420.0


class VersionedCluster(LoopbackCluster):
    """A loopback cluster whose nodes each run the "old" or the "new" wire."""

    old: set[str]

    def agent_env(self, node: str) -> dict[str, str]:
        env = super().agent_env(node)
        if node in self.old:
            env[WIRE_MAX_ENV] = "1"
        return env


def resources(record: Path, port: int) -> str:
    app = f"{sys.executable} -m hakeeper.lab.http_app"
    return f"""
[resources.singleton]
agent = "process"
params = {{ command = "{app} --port {port} --name singleton --record {record}" }}
ops.monitor = {{ interval = "1s", timeout = "5s" }}
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def lab(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[VersionedCluster]:
    base = tmp_path_factory.mktemp("roll")
    port = free_port_on(["127.0.0.11", "127.0.0.12", "127.0.0.13"])
    cluster = VersionedCluster(base, resources(base / "singleton.record", port))
    cluster.old = set(cluster.names)
    try:
        await cluster.start()
        await cluster.wait_for(
            "the singleton to run", lambda o: len(o.running_on("singleton")) == 1, 90.0
        )
        yield cluster
    finally:
        await cluster.close()


async def write_until(cluster: LoopbackCluster, stop: asyncio.Event, acked: list[str]) -> int:
    """One write every 50 ms; a write that raised has an unknown outcome and is not counted.
    Returns how many were tried."""
    coord = await cluster.coordinator()
    i = 0
    while not stop.is_set() and i < 20_000:
        key = f"{WRITER_PREFIX}{i:06d}"
        with contextlib.suppress(CoordError, TimeoutError):
            async with asyncio.timeout(10.0):
                await coord.put(key, b"x")
            acked.append(key)
        i += 1
        await asyncio.sleep(0.05)
    return i


async def operate(
    cluster: VersionedCluster, command: asyncio.subprocess.Process, since: dict[str, int]
) -> list[dict]:
    """Read the command's JSON lines; do each restart it waits for, on the new release
    (``since``: where each node's log stood when it restarted)."""
    lines: list[dict] = []
    assert command.stdout is not None
    async with asyncio.timeout(ROLL_TIMEOUT):
        async for raw in command.stdout:
            line = json.loads(raw)
            lines.append(line)
            step = line.get("step")
            if step and step["step"] == "restart" and not step["done"]:
                node = step["node"]
                await cluster.stop(node)
                since[node] = len(cluster.log_path(node).read_bytes())
                cluster.old.discard(node)
                await cluster.revive(node)
    return lines


async def test_a_roll_from_the_old_wire_to_the_new_loses_no_write_and_never_doubles_a_holder(
    lab: VersionedCluster,
) -> None:
    stop, acked, since = asyncio.Event(), [], {}
    writer = asyncio.create_task(write_until(lab, stop, acked))
    command = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hakeeper", "upgrade", "--rolling", "--json",
        "--config", str(lab.config_path), "--restart-timeout", "120",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        lines = await operate(lab, command, since)
        assert await asyncio.wait_for(command.wait(), 30.0) == 0, lines
    finally:
        stop.set()
        tried = await writer
        if command.returncode is None:
            command.kill()
            await command.wait()

    plan = lines[0]["plan"]
    assert plan["cluster_raft_wire"] == 1
    assert {tuple(n["raft_wire"]) for n in plan["nodes"]} == {(1, 1)}
    done = lines[-1]["done"]
    # The roll ends on this release's newest wire (2 when this test was written, 3 with pre-vote).
    newest = SUPPORTED[Format.RAFT_PEER_WIRE].newest
    assert done["cluster_raft_wire"] == newest, lab.tails()
    assert [s["step"]["node"] for s in lines if s.get("step", {}).get("step") == "online"] == (
        plan["order"]
    )
    # The first node upgraded spoke version 1 to the old nodes, then the newest to upgraded ones.
    first = plan["order"][0]
    after = lab.log_path(first).read_bytes()[since[first] :].decode(errors="replace")
    assert "event=raft_peer_wire" in after
    assert "version=1 " in after, after[-3000:]
    assert f"version={newest} " in after, after[-3000:]
    coord = await lab.coordinator()
    stored = {kv.key for kv in await coord.range(WRITER_PREFIX)}
    # Most writes answered (a faster roll leaves fewer: 92 of a 5 s roll once failed "> 100").
    assert len(acked) >= max(20, tried // 2), f"{len(acked)} of {tried} writes answered"
    assert not set(acked) - stored, "acknowledged writes lost"
    found = overlaps(read_records(lab.base_dir / "singleton.record"), lab.down_since)
    assert not found, f"two holders: {describe(found)}"
    serving = await lab.wait_for(
        "the singleton to run", lambda o: len(o.running_on("singleton")) == 1
    )
    assert len(serving.running_on("singleton")) == 1


async def test_an_older_daemon_refuses_a_store_a_newer_release_marked_and_says_upgrade(
    lab: VersionedCluster,
) -> None:
    coord = await lab.coordinator()
    store_key = lab.keys.store_format
    node = lab.names[0]
    log_before = len(lab.log_path(node).read_bytes())
    await coord.put(store_key, encode_store_format(99))
    try:
        await lab.stop(node)
        await lab.revive(node)
        exited = await lab.exited(node, 60.0)
        assert exited is not None, "the agent ran on a store in a format it cannot read"
        said = lab.log_path(node).read_bytes()[log_before:].decode(errors="replace")
        assert "cluster store format 99, written by a newer hakeeper" in said
        assert "hakeeper agent: the store of cluster" in said
        assert "upgrade this node" in said
    finally:
        await coord.put(store_key, encode_store_format(1))
    # The cluster itself stayed up, and the node starts once the store is readable again.
    await lab.revive(node)
    await lab.wait_for(f"{node} back online", lambda o: o.state.node(node).status == "online")
