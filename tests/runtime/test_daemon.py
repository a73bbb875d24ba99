"""The node daemon's waits: paced by the timing profile of the config in force."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from hakeeper.agents.registry import BUILTIN_AGENTS
from hakeeper.config.loader import spec_from_text
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.timing import PROFILES
from hakeeper.runtime.daemon import NodeDaemon
from hakeeper.runtime.events_log import EventLog
from hakeeper.runtime.keys import KeySpace
from tests.fakes import LocalCoordinator
from tests.fencing.test_fence_agents import STUB_METADATA


def config_text(profile: str) -> str:
    return f'[cluster]\nname = "c1"\nprofile = "{profile}"\n[nodes.n1]\naddress = "127.0.0.1"\n'


def spec_with(profile: str) -> ClusterSpec:
    return spec_from_text(config_text(profile), "test")


class QuorumAfter:
    """An engine without quorum for ``seconds`` (as an etcd minority member: it refuses at
    once), then with; counts how often it was asked."""

    def __init__(self, seconds: float) -> None:
        self.until = time.monotonic() + seconds
        self.calls = 0

    async def has_quorum(self) -> bool:
        self.calls += 1
        await asyncio.sleep(0)  # a real engine call yields to the event loop
        return time.monotonic() >= self.until


class QuorumAfterCalls:
    """An engine that answers "no quorum" ``refusals`` times, then "quorum"."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals

    async def has_quorum(self) -> bool:
        self.refusals -= 1
        return self.refusals < 0


async def test_waiting_for_quorum_asks_at_the_renew_interval_not_in_a_hot_loop(
    tmp_path: Path,
) -> None:
    daemon = NodeDaemon(spec_with("fast"), "n1", tmp_path, agents=BUILTIN_AGENTS)
    engine = QuorumAfter(1.0)

    await asyncio.wait_for(daemon._until_quorate(engine), timeout=30)  # type: ignore[arg-type]

    # "fast" renews every 0.2 s: some 6 asks in 1 s. Asking without a pause made tens of
    # thousands.
    assert engine.calls <= 50


async def test_a_stop_request_ends_the_wait_for_quorum(tmp_path: Path) -> None:
    daemon = NodeDaemon(spec_with("wan"), "n1", tmp_path, agents=BUILTIN_AGENTS)
    engine = QuorumAfter(3600.0)
    waiting = asyncio.create_task(daemon._until_quorate(engine))  # type: ignore[arg-type]
    await asyncio.sleep(0.1)

    daemon.request_stop()

    await asyncio.wait_for(waiting, timeout=30)
    assert engine.calls == 1, "the engine was asked again after the stop request"


async def test_a_config_that_switches_the_profile_paces_the_quorum_wait_by_the_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = NodeDaemon(spec_with("default"), "n1", tmp_path, agents=BUILTIN_AGENTS)
    events = EventLog(LocalCoordinator(), KeySpace("c1"), "n1")
    assert await daemon.config.use(config_text("fast").encode(), 7, events)
    pauses: list[float] = []

    async def pause(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr(daemon, "_pause", pause)

    await daemon._until_quorate(QuorumAfterCalls(2))  # type: ignore[arg-type]

    assert pauses == [PROFILES["fast"].renew_interval] * 2


async def test_the_member_lease_keeps_the_timing_it_started_with(tmp_path: Path) -> None:
    daemon = NodeDaemon(spec_with("default"), "n1", tmp_path, agents=BUILTIN_AGENTS)
    events = EventLog(LocalCoordinator(), KeySpace("c1"), "n1")

    assert await daemon.config.use(config_text("wan").encode(), 7, events)

    assert (daemon.spec.timing.name, daemon.lease_timing.name) == ("wan", "default")


async def test_a_daemon_reads_a_fence_agent_s_metadata_once_not_before_every_fence(
    tmp_path: Path,
) -> None:
    # Reading it again cost each fence an extra run of the agent (0.5 s of a failover on a
    # loaded machine): the runner's cache only helps if the daemon keeps one runner.
    asked = tmp_path / "metadata-asked"
    agent = tmp_path / "fence_counting"
    agent.write_text(
        "#!/bin/sh\ninput=$(cat)\n"
        f'case "$input" in *action=metadata*) echo x >> {asked}; cat <<EOF\n'
        f"{STUB_METADATA}\nEOF\nexit 0;; esac\nexit 0\n"
    )
    agent.chmod(0o755)
    text = (
        config_text("fast")
        + '[nodes.n2]\naddress = "127.0.0.2"\n'
        + f'[fencing.devices.pdu]\nagent = "{agent}"\nhost_list = ["n2"]\n'
    )
    daemon = NodeDaemon(spec_from_text(text, "test"), "n1", tmp_path, agents=BUILTIN_AGENTS)

    for _ in range(3):
        fencer = daemon._fencer(daemon.spec)
        assert fencer is not None
        assert (await fencer.fence("n2")).fenced

    assert asked.read_text().splitlines() == ["x"]
