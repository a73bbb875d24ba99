"""A balancer backend that follows the primary, on a real loopback cluster.

Three real agents run ``ocf:heartbeat:Stateful`` as a promotable clone; each node address
has a tiny HTTP server (tests/balancer/backends.py) that answers a write with its node's
name, standing for the database each node would run. The balancer (in this process) follows
the clone with ``role = "promoted"``. A writer sends writes through it throughout; the
primary's node is killed (agent and server) and confirmed fenced. Every write that succeeds
answers from the node that was primary when it was sent, and the first after the kill from
the new primary: the replicas' servers answer all along, so a write routed to one would show.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hakeeper.balancer.config import parse_config
from hakeeper.balancer.service import serving
from hakeeper.lab.loopback import LoopbackCluster, free_port_on
from hakeeper.runtime.observed import Observed
from tests.balancer.backends import HttpBackend
from tests.balancer.conftest import exchange

pytestmark = pytest.mark.slow

PROMOTABLE = """
[resources.state]
agent = "ocf:heartbeat:Stateful"
ops.monitor = { interval = "2s", timeout = "10s" }

[clones.db]
resource = "state"
promotable = true
"""

WRITE = b"POST /rows HTTP/1.1\r\nHost: db\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
EVERY = 0.02  # between writes
MAX_WRITES = 20_000  # the writer's bound, far above what the waits below allow


@dataclass(frozen=True, slots=True)
class Write:
    sent: float
    status: int  # 0: no answer (refused, reset, timed out)
    node: str


def promoted(observed: Observed) -> list[str]:
    return sorted(
        s.node
        for s in observed.statuses
        if s.resource == "state" and s.role == "promoted" and not observed.state.node(s.node).down
    )


async def write_once(port: int) -> Write:
    sent = time.monotonic()
    try:
        answers = await exchange(port, WRITE, timeout=5)
    except (OSError, TimeoutError):
        return Write(sent, 0, "")
    if not answers or not answers[0].done:
        return Write(sent, 0, "")
    return Write(sent, answers[0].status, answers[0].body.decode())


class Writer:
    """Writes through the balancer one after the other, each logged; bounded in count."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.log: list[Write] = []
        self.stop = asyncio.Event()
        self._answered = asyncio.Condition()

    async def run(self) -> None:
        for _ in range(MAX_WRITES):
            if self.stop.is_set():
                return
            write = await write_once(self.port)
            self.log.append(write)
            if write.status == 200:
                async with self._answered:
                    self._answered.notify_all()
            await asyncio.sleep(EVERY)

    async def answered_after(self, moment: float, timeout: float, count: int = 1) -> None:
        """Until ``count`` writes sent after ``moment`` succeeded."""
        async with asyncio.timeout(timeout), self._answered:
            await self._answered.wait_for(
                lambda: sum(w.status == 200 and w.sent > moment for w in self.log) >= count
            )


@dataclass
class Lab:
    cluster: LoopbackCluster
    servers: dict[str, HttpBackend]


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    cluster = LoopbackCluster(tmp_path, PROMOTABLE)
    port = free_port_on(list(cluster.address.values()))
    servers = {n: HttpBackend(n, host=a) for n, a in cluster.address.items()}
    try:
        for server in servers.values():
            await server.start(port)
        await cluster.start()
        yield Lab(cluster, servers)
    finally:
        for server in servers.values():
            await server.stop()
        await cluster.close()


async def test_a_write_right_after_a_failover_lands_on_the_new_primary(lab: Lab) -> None:
    cluster = lab.cluster
    port = next(iter(lab.servers.values())).port
    clone = {
        "resource": "state",
        "port": port,
        "cluster_config": str(cluster.config_path),
        "role": "promoted",
    }
    config = parse_config(
        {
            "frontend": [{"name": "db", "bind": "127.0.0.1:0", "backend": "db"}],
            "backend": [{"name": "db", "clone": clone, "check": {"type": "none"}}],
            "timeouts": {"connect": 1.0},
        },
        "test",
    )
    ready = await cluster.wait_for("one primary", lambda o: len(promoted(o)) == 1, timeout=120)
    old = promoted(ready)[0]
    async with serving(config, checks=False) as lb:
        writes = Writer(lb.port_of("db"))
        task = asyncio.create_task(writes.run())
        try:
            # Some writes before the fault, so a balancer that spread them would show.
            await writes.answered_after(0.0, timeout=60, count=20)
            # The node dies, its database with it; stopped first, so a write sent after
            # ``killed_at`` cannot still be answered by it while the agent is being killed.
            await lab.servers[old].stop()
            killed_at = time.monotonic()
            cluster.crash(old)
            await cluster.confirm_fenced(old)
            after = await cluster.wait_for(
                "a new primary among the survivors",
                lambda o: len(promoted(o)) == 1 and promoted(o)[0] != old,
                timeout=120,
            )
            new = promoted(after)[0]
            await writes.answered_after(killed_at, timeout=60)
        finally:
            writes.stop.set()
            async with asyncio.timeout(30):
                await task
    answered = [w for w in writes.log if w.status == 200]
    assert {w.node for w in answered if w.sent < killed_at} == {old}
    after_kill = [w for w in answered if w.sent > killed_at]
    assert after_kill[0].node == new
    assert {w.node for w in after_kill} == {new}, "a write answered from a non-primary"
