"""Failback and promotable clones on real agent processes (see test_runtime.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from hakeeper.lab.loopback import LoopbackCluster
from hakeeper.runtime.observed import Observed

pytestmark = pytest.mark.slow

PREFERS_N1 = """
[resources.singleton]
agent = "ocf:heartbeat:Dummy"
ops.monitor = { interval = "1s", timeout = "10s" }

[[constraints.location]]
resource = "singleton"
node = "n1"
score = 100
"""

PROMOTABLE = """
[resources.state]
agent = "ocf:heartbeat:Stateful"
ops.monitor = { interval = "2s", timeout = "10s" }

[clones.db]
resource = "state"
promotable = true
"""


def roles(observed: Observed, resource: str) -> dict[str, str]:
    return {
        s.node: s.role
        for s in observed.statuses
        if s.resource == resource and s.role != "stopped" and not observed.state.node(s.node).down
    }


def only_on(resource: str, node: str) -> Callable[[Observed], bool]:
    return lambda o: roles(o, resource) == {node: "started"}


@pytest.fixture
async def cluster_for(tmp_path: Path) -> AsyncIterator[Callable[[str, str], LoopbackCluster]]:
    made: list[LoopbackCluster] = []

    def make(resources: str, failback: str) -> LoopbackCluster:
        cluster = LoopbackCluster(tmp_path / failback, resources, failback=failback)
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            await cluster.close()


def holder_of(observed: Observed, resource: str) -> str | None:
    running = [n for n, r in roles(observed, resource).items() if r == "started"]
    return running[0] if len(running) == 1 else None


async def crash_and_recover_elsewhere(lab: LoopbackCluster, holder: str) -> None:
    lab.crash(holder)
    await lab.wait_for(f"{holder} lost", lambda o: o.state.node(holder).status == "lost")
    await lab.confirm_fenced(holder)
    await lab.wait_for(
        "the singleton elsewhere",
        lambda o: holder_of(o, "singleton") not in (None, holder),
    )
    await lab.revive(holder)
    await lab.wait_for(f"{holder} back", lambda o: holder in o.members)


async def test_automatic_failback_returns_the_resource_to_its_preferred_node(
    cluster_for: Callable[[str, str], LoopbackCluster],
) -> None:
    lab = cluster_for(PREFERS_N1, "auto")
    await lab.start()
    await lab.wait_for("the singleton on n1", only_on("singleton", "n1"))
    await crash_and_recover_elsewhere(lab, "n1")
    await lab.wait_for("failback to n1", only_on("singleton", "n1"))


async def test_manual_failback_leaves_the_resource_where_it_recovered(
    cluster_for: Callable[[str, str], LoopbackCluster],
) -> None:
    lab = cluster_for(PREFERS_N1, "manual")
    await lab.start()
    first = await lab.wait_for(
        "the singleton started", lambda o: holder_of(o, "singleton") is not None
    )
    before = holder_of(first, "singleton")
    assert before is not None
    await crash_and_recover_elsewhere(lab, before)
    settled = await lab.wait_for(
        "a settled singleton", lambda o: holder_of(o, "singleton") is not None
    )
    holder = holder_of(settled, "singleton")
    # Several controller cycles after the old holder is back, it has not moved back.
    for _ in range(3):
        await lab.wait_for("a stable singleton", only_on("singleton", holder or ""), timeout=10)
    assert holder != before


async def test_real_stateful_agent_runs_as_a_promotable_clone_with_one_primary(
    cluster_for: Callable[[str, str], LoopbackCluster],
) -> None:
    lab = cluster_for(PROMOTABLE, "auto")
    await lab.start()
    ready = await lab.wait_for(
        "one primary and two replicas",
        lambda o: sorted(roles(o, "state").values()) == ["promoted", "started", "started"],
    )
    primary = next(n for n, r in roles(ready, "state").items() if r == "promoted")

    lab.crash(primary)
    await lab.confirm_fenced(primary)
    after = await lab.wait_for(
        "a new primary among the survivors",
        lambda o: sorted(roles(o, "state").values()) == ["promoted", "started"],
    )
    assert primary not in roles(after, "state")
