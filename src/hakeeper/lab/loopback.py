"""A real hakeeper cluster on this one machine: one agent process per node, no root needed.

Node ``nI`` is ``127.0.0.(10+I)`` (all of 127.0.0.0/8 is loopback on Linux); every agent is
``python -m hakeeper agent`` with its own state dir, log and ``HA_RSCTMP`` (where OCF agents
keep their state files, like /run/resource-agents: per node, wiped by a crash as a reboot
would). The nodes share the lab's own cluster secret, ``<base dir>/secret`` (mode 0600).
``crash`` is what a power cut does to a node: its agent and every process its resources
started are SIGKILLed, by PID, and its runtime dir is gone. Used by the integration tests,
the demo and the failover benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hakeeper.agents.procfs import process_start_time
from hakeeper.config.loader import load_spec
from hakeeper.coord.base import Coordinator
from hakeeper.errors import CoordError, HakeeperError
from hakeeper.lab.cluster_secret import lab_secret_file
from hakeeper.lab.fence_agent import LoopbackTarget, ProcessRef, read_offs, write_target
from hakeeper.lab.processes import ManagedProcess
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.records import FencedMark
from hakeeper.runtime.connect import open_coordinator
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.observed import Observed
from hakeeper.runtime.store import ClusterStore


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
    secret_file: Path,
    profile: str = "fast",
    fencing: bool = False,
    failback: str = "auto",
    fence_targets: Path | None = None,
    fence_scope: str = "node",
    suspect_after: float | None = None,
) -> str:
    """A lab cluster file whose Raft peers prove ``secret_file`` (an absolute path); with
    ``fence_targets`` its nodes are fenced through the lab's fence device
    (``fence_hakeeper_lab``), the code path a real power switch takes. With ``scope =
    "node"`` that device is a power fence (it kills the agent too), with ``"resources"`` a
    fabric fence."""
    lines = [
        "[cluster]",
        f'name = "{name}"',
        f'profile = "{profile}"',
        f"fencing = {'true' if fencing else 'false'}",
        f'failback = "{failback}"',
        "",
        "[coordination]",
        'backend = "raft"',
        f'secret_file = "{secret_file}"',
        "",
    ]
    for i in range(1, nodes + 1):
        lines += [f"[nodes.n{i}]", f'address = "{node_address(i)}"', f"raft_port = {raft_port}", ""]
    if fence_targets is not None:
        lines += [
            "[fencing.devices.lab]",
            'agent = "fence_hakeeper_lab"',
            f'params = {{ targets_dir = "{fence_targets}", scope = "{fence_scope}" }}',
            f'kind = "{"power" if fence_scope == "node" else "fabric"}"',
            "timeout = 30",
            "",
        ]
        if suspect_after is not None:
            lines += ["[fencing]", f"suspect_after = {suspect_after}", ""]
    return "\n".join(lines) + resources


@dataclass(frozen=True, slots=True)
class Record:
    """One line of a lab service's own start/stop record."""

    what: str
    name: str
    node: str
    at: float  # system-wide monotonic clock
    pid: int
    epoch: int = 0  # the assignment's fencing token the service was started under


def read_records(path: Path) -> list[Record]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        what, name, node, at, pid, *epoch = line.split()
        out.append(Record(what, name, node, float(at), int(pid), int(epoch[0]) if epoch else 0))
    return out


def crash_node(
    state_dir: Path,
    runtime_dir: Path,
    agent_pid: int | None = None,
    agent_start_time: int | None = None,
) -> None:
    """Power cut of one node from any process: what the lab's fence device does on "off"
    (the agent, when given and only if the PID still has that start time, then every process
    group its resources started; its /run wiped)."""
    agent = (
        ProcessRef(agent_pid, agent_start_time)
        if agent_pid is not None and agent_start_time is not None
        else None
    )
    LoopbackTarget(agent, state_dir, runtime_dir).off("node")


def loopback_target(
    agent_pid: int, agent_start_time: int | None, state_dir: Path, runtime_dir: Path
) -> dict[str, object]:
    """What ``fence_hakeeper_lab`` needs to power off a loopback node."""
    return {
        "kind": "loopback",
        "agent_pid": agent_pid,
        "agent_start_time": agent_start_time,
        "state_dir": str(state_dir),
        "runtime_dir": str(runtime_dir),
    }


def launch_agent(argv: list[str], env: dict[str, str], log_path: Path) -> tuple[int, int]:
    """Start an agent detached from the caller (its own session, output to ``log_path``);
    returns its PID and start time, so that it can be signalled safely from another process."""
    proc = ManagedProcess(Path(log_path).stem, argv, log_path)
    proc.start(env=env)
    pid = proc.pid
    assert pid is not None
    start_time = process_start_time(pid)
    if start_time is None:
        raise HakeeperError(f"agent {argv} exited at once; see {log_path}")
    return pid, start_time


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
        fence_device: bool = False,
        fence_scope: str = "node",
        suspect_after: float | None = None,
    ) -> None:
        """``fence_device``: fence through ``fence_hakeeper_lab`` (implies ``fencing``);
        ``fence_scope = "resources"`` makes it kill only what the node's resources run;
        ``suspect_after``: fence a silent member before its lease expires."""
        self.base_dir = base_dir
        self.targets_dir = base_dir / "fence-targets"
        self.names = [f"n{i}" for i in range(1, nodes + 1)]
        addresses = [node_address(i) for i in range(1, nodes + 1)]
        self.address = dict(zip(self.names, addresses, strict=True))
        self.config_path = base_dir / "cluster.toml"
        self.secret_file = lab_secret_file(base_dir)
        text = cluster_file(
            name, nodes, free_port_on(addresses), resources, secret_file=self.secret_file,
            profile=profile, fencing=fencing or fence_device, failback=failback,
            fence_targets=self.targets_dir if fence_device else None, fence_scope=fence_scope,
            suspect_after=suspect_after,
        )  # fmt: skip
        self.config_path.write_text(text)
        self.spec: ClusterSpec = load_spec(self.config_path)
        self.keys = KeySpace(self.spec.options.name)
        self.crashed_at: dict[str, list[float]] = {n: [] for n in self.names}
        self._procs = {n: self._agent(n) for n in self.names}
        self._coord: Coordinator | None = None

    def _agent(self, node: str) -> ManagedProcess:
        return ManagedProcess(node, self.agent_argv(node), self.log_path(node))

    def agent_argv(self, node: str, *, join: bool = False) -> list[str]:
        return [
            sys.executable, "-m", "hakeeper", "agent",
            "--config", str(self.config_path), "--node", node,
            "--state-dir", str(self.state_dir(node)), *(["--join"] if join else []),
        ]  # fmt: skip

    def new_node(self, name: str) -> str:
        """A machine for ``hakeeper node add``: the next loopback address, a fresh state dir,
        an agent that joins (``agent --join``) once `start` launches it; its Raft address."""
        self.address[name] = node_address(len(self.address) + 1)
        self.names.append(name)
        self.crashed_at[name] = []
        self._procs[name] = ManagedProcess(
            name, self.agent_argv(name, join=True), self.log_path(name)
        )
        return f"{self.address[name]}:{self.spec.nodes[0].raft_port}"

    def raft_address(self, node: str) -> str:
        return f"{self.address[node]}:{self.spec.nodes[0].raft_port}"

    async def exited(self, node: str, timeout: float) -> int | None:
        """The agent's exit status once it exits by itself within ``timeout``, else None."""
        proc = self._procs[node]
        await asyncio.to_thread(proc.wait, timeout)
        return proc.returncode

    def agent_env(self, node: str) -> dict[str, str]:
        """What the agent gets on top of the caller's environment."""
        return {"HA_RSCTMP": str(self.runtime_dir(node))}

    def log_path(self, node: str) -> Path:
        return self.base_dir / f"{node}.log"

    def state_dir(self, node: str) -> Path:
        return self.base_dir / node

    def runtime_dir(self, node: str) -> Path:
        return self.base_dir / f"{node}-run"

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self, nodes: list[str] | None = None) -> None:
        for node in nodes or self.names:
            self._launch(node)

    def _launch(self, node: str) -> None:
        self.runtime_dir(node).mkdir(parents=True, exist_ok=True)
        proc = self._procs[node]
        proc.start(env=self.agent_env(node))
        assert proc.pid is not None
        write_target(
            self.targets_dir,
            node,
            loopback_target(
                proc.pid, process_start_time(proc.pid), self.state_dir(node), self.runtime_dir(node)
            ),
        )

    async def coordinator(self) -> Coordinator:
        """A client of the cluster's engine, for tests that look at the raw key space."""
        if self._coord is None:
            self._coord = await open_coordinator(self.spec, ready_timeout=60.0)
        return self._coord

    async def store(self) -> ClusterStore:
        return ClusterStore(await self.coordinator(), self.keys)

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
        self._procs[node].kill()  # our own child: killed and reaped here
        crash_node(self.state_dir(node), self.runtime_dir(node))

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

    def down_since(self, node: str, since: float) -> float | None:
        """The first crash or fence-confirmed-off of ``node`` after ``since`` (monotonic)."""
        times = self.crashed_at[node] + read_offs(self.targets_dir).get(node, [])
        after = [t for t in times if t > since]
        return min(after) if after else None

    async def confirm_fenced(self, node: str) -> None:
        store = await self.store()
        await store.mark_fenced(node, FencedMark(by="operator", ts=time.time()))

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


class HttpProbe:
    """A client of a service reachable on several addresses: a GET every ``interval`` to each.

    Every request is its own task with its own ``timeout``, so one that hangs (a SYN to a dead
    listener) does not delay the next; any 200 from any address counts as served. Used to
    measure the outage a client sees across a failover."""

    def __init__(
        self, addresses: list[str], port: int, interval: float = 0.010, timeout: float = 0.2
    ) -> None:
        self.addresses = addresses
        self.port = port
        self.interval = interval
        self.timeout = timeout
        self.good: list[tuple[float, float, str]] = []  # (sent, answered, body)
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    async def _get(self, address: str) -> None:
        sent = time.monotonic()
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(address, self.port)
                writer.write(b"GET / HTTP/1.0\r\nHost: probe\r\n\r\n")
                data = await reader.read()
        except (OSError, TimeoutError):
            return
        finally:
            if writer is not None:
                writer.close()
        if data.startswith(b"HTTP/1.0 200") or data.startswith(b"HTTP/1.1 200"):
            body = data.partition(b"\r\n\r\n")[2].decode(errors="replace").strip()
            self.good.append((sent, time.monotonic(), body))

    async def _run(self) -> None:
        next_at = time.monotonic()
        while True:
            for address in self.addresses:
                task = asyncio.create_task(self._get(address))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
            next_at += self.interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="http-probe")

    async def stop(self) -> None:
        for task in [self._task, *self._pending]:
            if task is not None:
                task.cancel()
        await asyncio.gather(
            *(t for t in [self._task, *self._pending] if t), return_exceptions=True
        )
        self._task = None

    def served_after(self, moment: float) -> tuple[float, str] | None:
        """The first good answer to a request sent after ``moment``."""
        after = [(answered, body) for sent, answered, body in self.good if sent > moment]
        return min(after) if after else None

    def outage(self, fault_at: float) -> float | None:
        """First good answer after the fault minus the last good answer before it."""
        before = [answered for sent, answered, _ in self.good if sent < fault_at]
        after = self.served_after(fault_at)
        if not before or after is None:
            return None
        return after[0] - max(before)

    async def wait_served_after(self, moment: float, timeout: float) -> tuple[float, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.served_after(moment)
            if found is not None:
                return found
            await asyncio.sleep(self.interval)
        raise HakeeperError(f"no answer on port {self.port} within {timeout}s")
