"""Hostile config values: a newline in a fence parameter; a stored config that cannot load.

Each test asserts that the attack failed, that the target is still alive (or, for a fence
device, untouched) and that a normal operation afterwards succeeds.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hakeeper.config import parse
from hakeeper.errors import ConfigError
from hakeeper.fencing.device import FenceDevice, PowerState
from hakeeper.fencing.fence_agents import FenceAgentRunner
from hakeeper.fencing.topology import Fencer, FencingPlan
from hakeeper.lab.loopback import LoopbackCluster
from hakeeper.model.events import ConfigRefused
from hakeeper.runtime.observed import Observed
from hakeeper.runtime.status_report import collect_status
from tests.conftest import require_binary

INJECTED = "n1\naction=on"


@pytest.fixture
def powered_on(tmp_path: Path) -> Path:
    """fence_dummy's power switch: a file holding "on" (the node runs) or "off"."""
    require_binary("fence_dummy")
    status = tmp_path / "status"
    status.write_text("on")
    return status


def dummy_doc(status: Path, hosts: dict[str, str]) -> dict[str, Any]:
    return {
        "nodes": {"n1": {}, "n2": {}, "n3": {}},
        "fencing": {
            "devices": {
                "dummy": {
                    "agent": "fence_dummy",
                    "params": {"type": "file", "status_file": str(status)},
                    "hosts": hosts,
                    "host_argument": "port",
                }
            }
        },
    }


def test_the_config_refuses_a_newline_in_a_host_map_value(powered_on: Path) -> None:
    with pytest.raises(ConfigError, match=r"fencing.devices.dummy.hosts.n1: contains a newline"):
        parse(dummy_doc(powered_on, {"n1": INJECTED}))
    parse(dummy_doc(powered_on, {"n1": "n1"}))  # the same device without the newline loads


async def test_a_newline_that_bypassed_validation_cannot_turn_an_off_into_an_on(
    powered_on: Path,
) -> None:
    """The value goes after ``action=off`` on the agent's stdin: unguarded, its own
    ``action=on`` line would win, the agent would answer 0 and the node would be marked
    fenced while it runs. The runner refuses to write it; the fence fails instead."""
    params = {"type": "file", "status_file": str(powered_on)}
    hostile = FenceDevice(
        "dummy", "fence_dummy", params=params, host_map={"n1": INJECTED}, host_argument="port"
    )
    runner = FenceAgentRunner()
    plan = FencingPlan({"dummy": hostile})
    fencer = Fencer(plan, runner, rng=random.Random(1), sleep=_no_sleep)
    outcome = await fencer.fence("n1", "off")
    assert not outcome.fenced, outcome.reason  # never reported fenced
    assert all("contains a newline" in a.output_tail for a in outcome.attempts)
    assert switch(powered_on) == "on"  # the agent never ran: the node is untouched
    honest = FenceDevice("dummy", "fence_dummy", params=params, host_argument="none")
    assert (await runner.run(honest, "off", "n1")).ok
    assert await runner.power_state(honest, "n1") is PowerState.OFF


def switch(status: Path) -> str:
    return status.read_text()


async def _no_sleep(_: float) -> None:
    return None


# --- a stored config that cannot load, written into the key space of a running cluster -------

WEB_CLONE = """
[resources.web]
agent = "ocf:heartbeat:Dummy"
ops.monitor = { interval = "2s", timeout = "10s" }

[clones.web-clone]
resource = "web"
"""

#: name: (the bytes written into the key space, what the refusal says)
HOSTILE_CONFIGS = {
    "not-utf8": (b'\xff\xfe[cluster]\nname = "lab"\n\x80\x81', "not UTF-8"),
    "deep-brackets": (
        b"[balancer]\nx = " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
        "nests deeper than",
    ),
    # Unbounded, this one would cost the parser about 1.5 GB on every node at once.
    "deep-dotted-key": (b"[balancer]\n" + b"x." * 20_000 + b"y = 1\n", "nests deeper than"),
}


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[LoopbackCluster]:
    cluster = LoopbackCluster(tmp_path, WEB_CLONE)
    try:
        await cluster.start()
        await cluster.wait_for("web on every node", lambda o: o.running_on("web") == cluster.names)
        yield cluster
    finally:
        await cluster.close()


async def refusals(
    lab: LoopbackCluster, revision: int, timeout: float = 60.0
) -> dict[str, ConfigRefused]:
    """Each node's ``config.refused`` for ``revision`` (waits for every node's)."""
    store = await lab.store()
    log = store.event_log("test")
    deadline = time.monotonic() + timeout
    found: dict[str, ConfigRefused] = {}
    while time.monotonic() < deadline and set(found) != set(lab.names):
        for event in await log.read():
            if isinstance(event, ConfigRefused) and event.revision == revision:
                found[event.node] = event
        await asyncio.sleep(0.5)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("payload", sorted(HOSTILE_CONFIGS))
async def test_a_stored_config_that_cannot_load_is_refused_and_the_cluster_runs_on(
    lab: LoopbackCluster, payload: str
) -> None:
    store = await lab.store()
    coord = await lab.coordinator()
    hostile, why = HOSTILE_CONFIGS[payload]
    revision = await coord.put(lab.keys.config, hostile)

    # The attack failed: every node refused it, with an event, and status warns.
    refused = await refusals(lab, revision)
    assert set(refused) == set(lab.names), lab.tails(30)
    assert all(why in event.reason for event in refused.values()), refused
    report = await collect_status(store, lab.spec, time.time())
    assert len(report.warnings) == 1
    assert f"revision {revision}) is refused" in report.warnings[0]
    assert why in report.warnings[0]
    # Every agent is alive and keeps the last good config: web still runs everywhere,
    # also on a node restarted while the stored config is the hostile one.
    assert all(lab.running(n) for n in lab.names), lab.tails(30)
    assert (await lab.observe()).running_on("web") == lab.names
    await lab.stop("n2")
    await lab.start(["n2"])
    await lab.wait_for("web back on n2", lambda o: o.running_on("web") == lab.names, timeout=90)
    assert lab.running("n2")
    # A normal operation afterwards succeeds: a good config adds a resource.
    extra = '\n[resources.extra]\nagent = "ocf:heartbeat:Dummy"\n'
    await coord.put(lab.keys.config, (lab.config_path.read_text() + extra).encode())
    await lab.wait_for("the new resource to start", lambda o: _runs(o, "extra"))
    assert (await collect_status(store, lab.spec, time.time())).warnings == ()


def _runs(observed: Observed, resource: str) -> bool:
    return any(s.resource == resource and s.role == "started" for s in observed.statuses)
