"""A scratch cluster on this machine from a cluster file given whole: one real agent process
per node, each with a fresh state directory under ``base_dir``, its nodes on loopback.

What a restore drill runs a backup's config in (`hakeeper dr drill`): unlike
`hakeeper.lab.loopback.LoopbackCluster`, which writes its own file, this one runs the file it
is given, node names and all. `loopback_nodes` gives the addresses and port to rewrite that
file's nodes to. Closing stops the agents gracefully (each stops its resources), then kills
whatever is left, by PID and process group.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from hakeeper.config import load_spec
from hakeeper.coord.base import Coordinator
from hakeeper.lab.loopback import crash_node, free_port_on, node_address
from hakeeper.lab.processes import ManagedProcess
from hakeeper.model.cluster import ClusterSpec
from hakeeper.runtime.connect import open_coordinator
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.store import ClusterStore

STOP_TIMEOUT = 60.0


def loopback_nodes(names: Sequence[str]) -> tuple[dict[str, str], int]:
    """A loopback address per node (127.0.0.11, .12, …) and one Raft port free on all."""
    addresses = {name: node_address(i) for i, name in enumerate(names, start=1)}
    return addresses, free_port_on(list(addresses.values()))


class ScratchCluster:
    def __init__(self, base_dir: Path, config_text: str) -> None:
        self.base_dir = base_dir
        base_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.config_path = base_dir / "cluster.toml"
        self.config_path.write_text(config_text, encoding="utf-8")
        self.spec: ClusterSpec = load_spec(self.config_path)
        self.names = [n.name for n in self.spec.nodes]
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

    def start(self) -> None:
        for node, proc in self._procs.items():
            self.runtime_dir(node).mkdir(parents=True, exist_ok=True)
            proc.start(env={"HA_RSCTMP": str(self.runtime_dir(node))})

    async def store(self, ready_timeout: float = 60.0) -> ClusterStore:
        """A client of the scratch cluster's engine (made once, closed by `close`)."""
        if self._coord is None:
            self._coord = await open_coordinator(self.spec, ready_timeout=ready_timeout)
        return ClusterStore(self._coord, KeySpace(self.spec.options.name))

    async def close(self) -> None:
        if self._coord is not None:
            await self._coord.close()
            self._coord = None
        for proc in self._procs.values():
            proc.signal(signal.SIGTERM)
        for node, proc in self._procs.items():
            if not await asyncio.to_thread(proc.wait, STOP_TIMEOUT):
                await asyncio.to_thread(proc.kill)
            # Whatever a resource left running goes too (by process group, as a power cut).
            crash_node(self.state_dir(node), self.runtime_dir(node))

    def tails(self, lines: int = 15) -> str:
        return "\n".join(f"--- {n}\n{p.log_tail(lines)}" for n, p in self._procs.items())
