"""A real hakeeper cluster on this one machine: one agent process per node, no root needed.

Node ``nI`` is ``127.0.0.(10+I)`` (all of 127.0.0.0/8 is loopback on Linux); every agent is
``python -m hakeeper agent`` with its own state dir, log and ``HA_RSCTMP`` (where OCF agents
keep their state files, like /run/resource-agents: per node, wiped by a crash as a reboot
would). ``crash`` is what a power cut does to a node: its agent and every process its
resources started are SIGKILLed, by PID, and its runtime dir is gone. Used by the
integration tests, the demo and the failover benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hakeeper.agents.process import process_start_time
from hakeeper.cluster.connect import open_coordinator
from hakeeper.cluster.keys import KeySpace
from hakeeper.cluster.store import ClusterStore, Observed
from hakeeper.config.loader import load_spec
from hakeeper.coord.base import Coordinator
from hakeeper.errors import CoordError, HakeeperError
from hakeeper.lab.processes import ManagedProcess
from hakeeper.model.cluster import ClusterSpec


def node_address(index: int) -> str:
    return f"127.0.0.{10 + index}"


def free_port_on(addresses: list[str]) -> int:
    """A port free on every one of ``addresses`` a moment ago."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = int(probe.getsockname()[1])
        try:
            for address in addresses[1:]:
                with socket.socket() as other:
                    other.bind((address, port))
        except OSError:
            continue
        return port
    raise OSError(f"no port free on all of {addresses}")


def cluster_file(
    name: str,
    nodes: int,
    raft_port: int,
    resources: str,
    *,
    profile: str = "fast",
    fencing: bool = False,
    failback: str = "auto",
) -> str:
    lines = [
        "[cluster]",
        f'name = "{name}"',
        f'profile = "{profile}"',
        f"fencing = {'true' if fencing else 'false'}",
        f'failback = "{failback}"',
        "",
        "[coordination]",
        'backend = "raft"',
        "",
    ]
    for i in range(1, nodes + 1):
        lines += [f"[nodes.n{i}]", f'address = "{node_address(i)}"', f"raft_port = {raft_port}", ""]
    return "\n".join(lines) + resources


@dataclass(frozen=True, slots=True)
class Record:
    """One line of a lab service's own start/stop record."""

    what: str
    name: str
    node: str
    at: float  # system-wide monotonic clock
    pid: int


def read_records(path: Path) -> list[Record]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        what, name, node, at, pid = line.split()
        out.append(Record(what, name, node, float(at), int(pid)))
    return out


class LoopbackCluster:
    def __init__(
        self,
        base_dir: Path,
        resources: str,
        *,
        nodes: int = 3,
        name: str = "lab",
        profile: str = "fast",
        fencing: bool = False,
        failback: str = "auto",
    ) -> None:
        self.base_dir = base_dir
        self.names = [f"n{i}" for i in range(1, nodes + 1)]
        addresses = [node_address(i) for i in range(1, nodes + 1)]
        self.address = dict(zip(self.names, addresses, strict=True))
        self.config_path = base_dir / "cluster.toml"
        base_dir.mkdir(parents=True, exist_ok=True)
        text = cluster_file(
            name, nodes, free_port_on(addresses), resources,
            profile=profile, fencing=fencing, failback=failback,
        )  # fmt: skip
        self.config_path.write_text(text)
        self.spec: ClusterSpec = load_spec(self.config_path)
        self.keys = KeySpace(self.spec.options.name)
        self.crashed_at: dict[str, list[float]] = {n: [] for n in self.names}
        self._procs = {n: self._agent(n) for n in self.names}
        self._coord: Coordinator | None = None

    def _agent(self, node: str) -> ManagedProcess:
        argv = [
            sys.executable, "-m", "hakeeper", "agent",
            "--config", str(self.config_path), "--node", node,
            "--state-dir", str(self.state_dir(node)),
        ]  # fmt: skip
        return ManagedProcess(node, argv, self.base_dir / f"{node}.log")

    def state_dir(self, node: str) -> Path:
        return self.base_dir / node

    def runtime_dir(self, node: str) -> Path:
        return self.base_dir / f"{node}-run"

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self, nodes: list[str] | None = None) -> None:
        for node in nodes or self.names:
            self._launch(node)

    def _launch(self, node: str) -> None:
        rsctmp = self.runtime_dir(node)
        rsctmp.mkdir(parents=True, exist_ok=True)
        self._procs[node].start(env={"HA_RSCTMP": str(rsctmp)})

    async def store(self) -> ClusterStore:
        if self._coord is None:
            self._coord = await open_coordinator(self.spec, ready_timeout=60.0)
        return ClusterStore(self._coord, self.keys)

    async def observe(self) -> Observed:
        store = await self.store()
        return await store.observe(self.spec, time.time())

    async def wait_for(
        self, what: str, check: Callable[[Observed], bool], timeout: float = 60.0
    ) -> Observed:
        """Poll the cluster until ``check`` holds; a clear failure with the agents' logs."""
        deadline = time.monotonic() + timeout
        last: Observed | None = None
        while time.monotonic() < deadline:
            with contextlib.suppress(CoordError):
                last = await self.observe()
                if check(last):
                    return last
            await asyncio.sleep(0.2)
        raise HakeeperError(
            f"timed out after {timeout}s waiting for {what}; last: {last}\n{self.tails()}"
        )

    def running(self, node: str) -> bool:
        return self._procs[node].running

    def pid(self, node: str) -> int | None:
        return self._procs[node].pid

    # --- faults ---------------------------------------------------------------------------------

    def crash(self, node: str) -> None:
        """Power cut: SIGKILL the agent and everything its resources started; wipe /run."""
        self.crashed_at[node].append(time.monotonic())
        self._procs[node].kill()
        for state_file in (self.state_dir(node) / "agents").glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                data = json.loads(state_file.read_text())
                pid = int(data["pid"])
                if process_start_time(pid) == int(data["start_time"]):
                    os.killpg(pid, signal.SIGKILL)
            state_file.unlink(missing_ok=True)
        shutil.rmtree(self.runtime_dir(node), ignore_errors=True)

    def freeze(self, node: str) -> None:
        self._procs[node].signal(signal.SIGSTOP)

    def thaw(self, node: str) -> None:
        self._procs[node].signal(signal.SIGCONT)

    async def revive(self, node: str) -> None:
        await asyncio.to_thread(self._procs[node].kill)
        self._launch(node)

    async def stop(self, node: str, timeout: float = 60.0) -> None:
        """Graceful: SIGTERM and wait for the agent to hand over and exit."""
        proc = self._procs[node]
        proc.signal(signal.SIGTERM)
        if not await asyncio.to_thread(proc.wait, timeout):
            raise HakeeperError(f"agent {node} did not stop within {timeout}s\n{self.tails()}")

    async def confirm_fenced(self, node: str) -> None:
        store = await self.store()
        await store.confirm_fenced(node, by="operator", now=time.time())

    async def close(self) -> None:
        if self._coord is not None:
            await self._coord.close()
            self._coord = None
        for node in self.names:
            self.crash(node)

    async def __aenter__(self) -> LoopbackCluster:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def tails(self, lines: int = 15) -> str:
        return "\n".join(f"--- {n}\n{p.log_tail(lines)}" for n, p in self._procs.items())
