"""The ``sessions`` resource agent: config checks, and a promotable clone on a real cluster."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hakeeper.agents.factory import AgentContext
from hakeeper.cli.plugins import RESOURCE_AGENTS
from hakeeper.config.secret_file import write_secret_file
from hakeeper.errors import ConfigError
from hakeeper.lab.fence_agent import ProcessRef
from hakeeper.lab.loopback import LoopbackCluster
from hakeeper.lab.processes import free_port
from hakeeper.runtime.observed import Observed
from hakeeper.sessions.agent import SessionsAgent
from hakeeper.sessions.client import SessionClient
from hakeeper.sessions.position import Position, Role

NODES = {"n1": "127.0.0.11", "n2": "127.0.0.12", "n3": "127.0.0.13"}


def test_agent_serves_on_its_nodes_address_with_the_others_as_peers(tmp_path: Path) -> None:
    agent = RESOURCE_AGENTS.make(
        "sessions",
        AgentContext(instance="store", params={"port": 11311, "nodes": NODES}, state_dir=tmp_path),
    )
    assert isinstance(agent, SessionsAgent)
    argv = agent.argv_for("n2")
    assert argv[argv.index("--listen") + 1] == "127.0.0.12:11311"
    # The nodes reach each other on the peer port (port + 1 by default), secret proven.
    assert argv[argv.index("--peer-listen") + 1] == "127.0.0.12:11312"
    assert argv[argv.index("--peers") + 1].split(",") == [
        "127.0.0.11:11312",
        "127.0.0.12:11312",
        "127.0.0.13:11312",
    ]
    assert argv[argv.index("--secret-file") + 1] == "/etc/hakeeper/secret"


def test_agent_passes_the_secret_file_by_path_never_its_contents(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret = write_secret_file(secret_file)
    params = {"port": 11311, "peer_port": 12000, "nodes": NODES, "secret_file": str(secret_file)}
    agent = RESOURCE_AGENTS.make(
        "sessions", AgentContext(instance="store", params=params, state_dir=tmp_path)
    )
    assert isinstance(agent, SessionsAgent)
    argv = agent.argv_for("n1")
    assert argv[argv.index("--secret-file") + 1] == str(secret_file)
    assert argv[argv.index("--peer-listen") + 1] == "127.0.0.11:12000"
    assert not any(secret.current.decode() in arg for arg in argv)


def test_agent_takes_the_cluster_secret_file_the_executor_passes(tmp_path: Path) -> None:
    params = {"port": 11311, "nodes": NODES}
    secret_file = Path("/srv/hakeeper/secret")
    agent = RESOURCE_AGENTS.make(
        "sessions",
        AgentContext(instance="store", params=params, state_dir=tmp_path, secret_file=secret_file),
    )
    assert isinstance(agent, SessionsAgent)
    argv = agent.argv_for("n3")
    assert argv[argv.index("--secret-file") + 1] == "/srv/hakeeper/secret"


@pytest.mark.parametrize(
    "params",
    [
        {"nodes": NODES},
        {"port": "x", "nodes": NODES},
        {"port": 11311},
        {"port": 1, "bogus": 1},
        {"port": 11311, "peer_port": 11311, "nodes": NODES},
        {"port": 11311, "nodes": NODES, "secret_file": "relative/secret"},
    ],
)
def test_bad_params_are_refused_at_config_load(tmp_path: Path, params: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        RESOURCE_AGENTS.make(
            "sessions", AgentContext(instance="store", params=params, state_dir=tmp_path)
        )


def roles(observed: Observed, resource: str) -> dict[str, str]:
    return {
        s.node: s.role
        for s in observed.statuses
        if s.resource == resource and s.role != "stopped" and not observed.state.node(s.node).down
    }


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[tuple[LoopbackCluster, int, SessionsAgent]]:
    port = free_port("127.0.0.11")
    peer_port = free_port("127.0.0.11")
    secret_file = tmp_path / "sessions-secret"
    write_secret_file(secret_file)
    nodes = ", ".join(f'{name} = "{host}"' for name, host in NODES.items())
    resources = f"""
[resources.store]
agent = "sessions"
params = {{ port = {port}, peer_port = {peer_port}, secret_file = "{secret_file}", \
nodes = {{ {nodes} }} }}
ops.monitor = {{ interval = "1s", timeout = "10s" }}

[clones.sessions]
resource = "store"
promotable = true
"""
    params = {"port": port, "peer_port": peer_port, "secret_file": str(secret_file), "nodes": NODES}
    agent = RESOURCE_AGENTS.make(
        "sessions", AgentContext(instance="store", params=params, state_dir=tmp_path / "control")
    )
    assert isinstance(agent, SessionsAgent)
    cluster = LoopbackCluster(tmp_path, resources)
    try:
        yield cluster, port, agent
    finally:
        await cluster.close()


async def replica_follows_primary(
    agent: SessionsAgent, replica: str, primary: str, timeout: float = 30.0
) -> None:
    """Promoted is what the cluster reports; the replica learns it from the stream's hello.
    Positions are read on the peer ports, with the secret, as the agent reads them."""
    async with agent.control_client(agent.address_of(primary)) as client:
        epoch = (await client.position()).log_epoch
    deadline = asyncio.get_running_loop().time() + timeout
    async with agent.control_client(agent.address_of(replica)) as client:
        while (await client.position()).log_epoch != epoch:
            assert asyncio.get_running_loop().time() < deadline, "replica never synced"
            await asyncio.sleep(0.1)


async def started_with_a_primary(cluster: LoopbackCluster) -> str:
    """Start the cluster, wait for one store primary and two replicas; the primary's node."""
    await cluster.start()
    ready = await cluster.wait_for(
        "one store primary and two replicas",
        lambda o: sorted(roles(o, "store").values()) == ["promoted", "started", "started"],
    )
    return next(n for n, r in roles(ready, "store").items() if r == "promoted")


@pytest.mark.slow
async def test_promotable_store_keeps_acknowledged_writes_across_primary_crash(
    lab: tuple[LoopbackCluster, int, SessionsAgent],
) -> None:
    cluster, port, agent = lab
    primary = await started_with_a_primary(cluster)
    survivor = next(n for n in NODES if n != primary)
    await replica_follows_primary(agent, survivor, primary)
    async with SessionClient(f"{NODES[survivor]}:{port}") as client:
        for index in range(20):
            assert await client.set(b"k%d" % index, b"v%d" % index) == b"STORED"
    cluster.crash(primary)
    await cluster.confirm_fenced(primary)
    after = await cluster.wait_for(
        "a new store primary among the survivors",
        lambda o: sorted(roles(o, "store").values()) == ["promoted", "started"],
    )
    new_primary = next(n for n, r in roles(after, "store").items() if r == "promoted")
    await replica_follows_primary(agent, survivor, new_primary)
    async with SessionClient(f"{NODES[survivor]}:{port}") as client:
        for index in range(20):
            found = await client.get(b"k%d" % index)
            assert found is not None
            assert found.data == b"v%d" % index
        assert await client.set(b"after", b"x") == b"STORED"


async def store_position(agent: SessionsAgent, node: str) -> Position:
    async with agent.control_client(agent.address_of(node)) as client:
        return await client.position()


def store_process(cluster: LoopbackCluster, node: str) -> ProcessRef:
    """The store's process on ``node``, from the process agent's state file."""
    data = json.loads((cluster.state_dir(node) / "agents" / "store.json").read_text())
    return ProcessRef(int(data["pid"]), int(data["start_time"]))


def promotion_score(observed: Observed, node: str) -> int | None:
    return observed.state.promotion_scores.get("store", {}).get(node)


async def killed(cluster: LoopbackCluster, node: str) -> None:
    """SIGKILL ``node``'s store (the cluster restarts it, empty); fails if it is not running."""
    deadline = asyncio.get_running_loop().time() + 10
    while not (process := store_process(cluster, node)).alive():
        assert asyncio.get_running_loop().time() < deadline, f"no store running on {node}"
        await asyncio.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)


@pytest.mark.slow
async def test_the_keeper_of_the_data_is_neither_restarted_nor_passed_over(
    lab: tuple[LoopbackCluster, int, SessionsAgent],
) -> None:
    """Issue 20's lost writes: the primary's node crashes while the other replica's store
    restarts empty. The keeper, the one node left with the data, must not be promoted on the
    empty node's say (its monitor reports score -1: a promote would be refused), must not be
    restarted (on_fail = "demote", if a promote was tried and refused), and, once every node
    answers again, is the one promoted: not a node restarted empty ("first eligible")."""
    cluster, port, agent = lab
    primary = await started_with_a_primary(cluster)
    keeper, emptied = (n for n in NODES if n != primary)
    await replica_follows_primary(agent, keeper, primary)
    async with SessionClient(f"{NODES[keeper]}:{port}") as client:
        for index in range(20):
            assert await client.set(b"k%d" % index, b"v%d" % index) == b"STORED"
    written = await store_position(agent, primary)
    deadline = asyncio.get_running_loop().time() + 30
    while (await store_position(agent, keeper)).seq < written.seq:
        assert asyncio.get_running_loop().time() < deadline, "the keeper never caught up"
        await asyncio.sleep(0.1)
    kept = store_process(cluster, keeper)

    cluster.crash(primary)
    await killed(cluster, emptied)
    await cluster.confirm_fenced(primary)
    await cluster.wait_for(
        "the keeper scoring -1 while the emptied node cannot vouch",
        lambda o: promotion_score(o, keeper) == -1 and "promoted" not in roles(o, "store").values(),
    )
    assert kept.alive(), "the keeper's store was restarted: it held the only copy"
    position = await store_position(agent, keeper)
    assert (position.log_epoch, position.seq) >= (written.log_epoch, written.seq)
    assert position.role is Role.REPLICA

    await cluster.revive(primary)  # every node answers now: the keeper's log is the best
    after = await cluster.wait_for(
        "a store primary again",
        lambda o: "promoted" in roles(o, "store").values(),
        timeout=90.0,
    )
    new_primary = next(n for n, r in roles(after, "store").items() if r == "promoted")
    refused_before = any(f.node == keeper and f.count > 0 for f in after.state.failcounts)
    # A promote the scheduler chose the keeper for before its monitor said -1 was refused,
    # and holds it back for failure_timeout (rule 6); the data must survive either way.
    assert new_primary == keeper or refused_before, f"{new_primary} promoted over the keeper"
    async with SessionClient(f"{NODES[keeper]}:{port}") as client:
        for index in range(20):
            found = await client.get(b"k%d" % index)
            assert found is not None, f"k{index} lost"
            assert found.data == b"v%d" % index


def test_agent_writes_ipv6_node_addresses_in_brackets(tmp_path: Path) -> None:
    nodes = {"n1": "fd00::11", "n2": "fd00::12"}
    agent = RESOURCE_AGENTS.make(
        "sessions",
        AgentContext(instance="store", params={"port": 11311, "nodes": nodes}, state_dir=tmp_path),
    )
    assert isinstance(agent, SessionsAgent)
    argv = agent.argv_for("n2")
    assert argv[argv.index("--listen") + 1] == "[fd00::12]:11311"
    assert argv[argv.index("--peers") + 1].split(",") == ["[fd00::11]:11312", "[fd00::12]:11312"]
