"""A hakeeper cluster on network-namespace hosts: the lab behind ``hakeeper lab``.

`NetnsLab.create` records the lab in ``<dir>/lab.json`` *before* it builds anything (so
``lab down`` can remove whatever exists even after a crash half-way), builds the network
(`netns_topology`), writes the cluster file and one fence target per node, and starts a
``hakeeper agent`` inside every node namespace (``ip netns exec``). The generated cluster:
embedded Raft on the lab addresses; ``vip`` (the lab VIP on ``eth0``, preferring ``n1``)
colocated with ``web-clone`` (`hakeeper.lab.http_app` on every node, port 8080);
fencing through ``fence_hakeeper_lab`` with ``netns`` targets (`netns_fence`); the
lab's own cluster secret in ``<dir>/secret`` (mode 0600), kept across ``start_cluster``.

Faults act like the real thing: ``crash`` is a power cut (every process of the host
SIGKILLed, its cable pulled), ``freeze``/``thaw`` SIGSTOP/SIGCONT the agent, ``isolate``/
``heal`` take the switch port down/up (``heal`` also restarts an agent that is gone, as a
rebooted machine would). Only PIDs started here, or processes inside this lab's own
namespaces, are ever signalled.

Sync API (pyroute2's sync calls run their own event loop): from asyncio, use a thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hakeeper.agents.procfs import process_start_time
from hakeeper.errors import ConfigError, HakeeperError
from hakeeper.lab.cluster_secret import lab_secret_file
from hakeeper.lab.fence_agent import write_target
from hakeeper.lab.netns_fence import (
    NetnsTarget,
    flush_addresses,
    kill_all_in,
    namespace_id,
    pids_in,
    port_is_up,
)
from hakeeper.lab.netns_fence import set_port as _set_port
from hakeeper.lab.netns_topology import LabLayout, build, holders, teardown
from hakeeper.model.cluster import NoQuorumPolicy

STATE_FILE = "lab.json"
HTTP_PORT = 8080
PROFILES = ("default", "fast")

#: The lab fence agent's targets and its log of fences, under the lab's directory.
FENCE_DIR = "fence"


@dataclass(frozen=True, slots=True)
class AgentRef:
    """An agent process we started: PID and kernel start time (a reused PID is not ours)."""

    pid: int
    start_time: int

    def alive(self) -> bool:
        return process_start_time(self.pid) == self.start_time

    def state(self) -> str:
        """``running``, ``frozen`` (stopped by a signal) or ``gone``."""
        if not self.alive():
            return "gone"
        try:
            text = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return "gone"
        return "frozen" if text[text.rfind(")") + 2] in "Tt" else "running"


@dataclass(frozen=True, slots=True)
class HostStatus:
    host: str
    namespace: str
    address: str
    port_up: bool
    agent: str  # running | frozen | gone | - (client)
    processes: int
    holds_vip: bool


def lab_config(
    layout: LabLayout,
    lab_dir: Path,
    *,
    secret_file: Path,
    profile: str,
    failback: str,
    suspect_after: float | None = None,
    no_quorum_policy: NoQuorumPolicy = "stop",
) -> str:
    """The cluster file of a lab (TOML), its Raft peers proving ``secret_file`` (absolute).
    The lab's fence device kills every process of the host: a power fence, so
    ``suspect_after`` (fence on suspicion) may be used."""
    http = f"{sys.executable} -m hakeeper.lab.http_app --port {HTTP_PORT} --bind 0.0.0.0"
    lines = [
        "[cluster]",
        f'name = "{layout.prefix.rstrip("-")}"',
        f'profile = "{profile}"',
        "fencing = true",
        f'failback = "{failback}"',
        f'no_quorum_policy = "{no_quorum_policy}"',
        "",
        "[coordination]",
        'backend = "raft"',
        "raft_port = 7480",
        f'secret_file = "{secret_file}"',
        "",
    ]
    for node in layout.nodes:
        lines += [f"[nodes.{node}]", f'address = "{layout.address(node)}"', ""]
    hosts = ", ".join(f'{n} = "{n}"' for n in layout.nodes)
    lines += [
        "[resources.vip]",
        'agent = "vip"',
        f'params = {{ ip = "{layout.vip}/{layout.prefixlen}", interface = "eth0" }}',
        "",
        "[resources.web]",
        'agent = "process"',
        f'params = {{ command = "{http} --name web" }}',
        # A second copy of a stateless web server is harmless.
        "exclusive = false",
        "",
        "[clones.web-clone]",
        'resource = "web"',
        "",
        "[[constraints.location]]",
        'resource = "vip"',
        f'node = "{layout.nodes[0]}"',
        "score = 100",
        "",
        "[[constraints.colocation]]",
        'resource = "vip"',
        'with = "web-clone"',
        "",
        # The VIP goes only where web already answers; on failback it leaves its old node
        # once web runs on the returning one (make before break).
        "[[constraints.order]]",
        'first = "web-clone"',
        'then = "vip"',
        "",
        "[fencing.devices.lab]",
        'agent = "fence_hakeeper_lab"',
        f'params = {{ targets_dir = "{lab_dir / FENCE_DIR}" }}',
        f"hosts = {{ {hosts} }}",
        'timeout = "20s"',
        # The lab agent takes port=; saying so spares a metadata run on the first fence.
        'host_argument = "port"',
        'kind = "power"',
        # Its start-up (~0.1 s) would be outage after a suspicion: an agent waits, started.
        "prestart = true",
        "",
    ]
    if suspect_after is not None:
        lines += ["[fencing]", f"suspect_after = {suspect_after}", ""]
    return "\n".join(lines)


class NetnsLab:
    """One lab, loaded from or saved to ``<lab_dir>/lab.json``."""

    def __init__(
        self,
        lab_dir: Path,
        layout: LabLayout,
        *,
        profile: str = "fast",
        failback: str = "auto",
        suspect_after: float | None = None,
        agents: dict[str, AgentRef] | None = None,
    ) -> None:
        self.lab_dir = lab_dir
        self.layout = layout
        self.profile = profile
        self.failback = failback
        self.suspect_after = suspect_after
        self.agents: dict[str, AgentRef] = dict(agents or {})
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    # --- state file ----------------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.lab_dir / STATE_FILE

    @property
    def fence_dir(self) -> Path:
        return self.lab_dir / FENCE_DIR

    @property
    def config_path(self) -> Path:
        return self.lab_dir / "cluster.toml"

    @property
    def vip(self) -> str:
        return self.layout.vip

    def save(self) -> None:
        self.lab_dir.mkdir(parents=True, exist_ok=True)
        data = {
            "layout": self.layout.to_json(),
            "profile": self.profile,
            "failback": self.failback,
            "suspect_after": self.suspect_after,
            "agents": {n: [a.pid, a.start_time] for n, a in self.agents.items()},
        }
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.state_path)

    @classmethod
    def load(cls, lab_dir: Path) -> NetnsLab:
        path = lab_dir / STATE_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(
                f"no lab in {lab_dir} (no {STATE_FILE}); start one: "
                f"{shlex.join(['hakeeper', 'lab', 'up', '--dir', str(lab_dir)])}"
            ) from None
        except ValueError as exc:
            raise ConfigError(
                f"{path} is unreadable ({exc}); remove the lab by hand: ip netns list"
            ) from exc
        agents = {n: AgentRef(int(v[0]), int(v[1])) for n, v in data.get("agents", {}).items()}
        suspect = data.get("suspect_after")
        return cls(
            lab_dir,
            LabLayout.from_json(data["layout"]),
            profile=str(data.get("profile", "fast")),
            failback=str(data.get("failback", "auto")),
            suspect_after=None if suspect is None else float(suspect),
            agents=agents,
        )

    # --- lifecycle -----------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        lab_dir: Path,
        *,
        nodes: int = 3,
        client: bool = True,
        profile: str = "fast",
        failback: str = "auto",
        suspect_after: float | None = None,
        start_agents: bool = True,
        no_quorum_policy: NoQuorumPolicy = "stop",
    ) -> NetnsLab:
        """Build a lab and start its agents; on any failure, remove what was made and raise."""
        if os.geteuid() != 0:
            raise ConfigError("the namespace lab needs root (network namespaces, veths, bridge)")
        if profile not in PROFILES:
            raise ConfigError(f"lab profile {profile!r}: use one of {', '.join(PROFILES)}")
        if (lab_dir / STATE_FILE).exists():
            raise ConfigError(
                f"a lab already lives in {lab_dir}; first run: "
                f"{shlex.join(['hakeeper', 'lab', 'down', '--dir', str(lab_dir)])}"
            )
        lab = cls(
            lab_dir, LabLayout.create(nodes, client=client), profile=profile, failback=failback,
            suspect_after=suspect_after,
        )  # fmt: skip
        lab.save()  # before anything exists: lab down must find it even if we crash now
        try:
            build(lab.layout)
            text = lab_config(
                lab.layout, lab_dir, secret_file=lab_secret_file(lab_dir), profile=profile,
                failback=failback, suspect_after=suspect_after, no_quorum_policy=no_quorum_policy,
            )  # fmt: skip
            lab.config_path.write_text(text)
            if start_agents:
                for node in lab.layout.nodes:
                    lab.start_agent(node)
        except BaseException:
            lab.down()
            raise
        return lab

    def down(self) -> list[str]:
        """Kill everything inside the lab, delete its namespaces (and so its links), forget it.
        Logs and state dirs stay in the lab dir for a post-mortem."""
        for ref in self.agents.values():
            if ref.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(ref.pid, signal.SIGKILL)
        removed = teardown(self.layout)
        self._reap()
        self.state_path.unlink(missing_ok=True)
        return removed

    # --- agents --------------------------------------------------------------------------------

    def stop_cluster(self) -> None:
        """Every process of every node killed, runtime addresses dropped, cables in: the
        hosts as freshly booted, with no cluster running (benchmarks reuse one network)."""
        for node in self.layout.nodes:
            kill_all_in(self.layout.host_ns(node))
            flush_addresses(self.layout.host_ns(node), self.layout.address(node))
            _set_port(self.layout.switch_ns, self.layout.port(node), up=True)
        self.agents.clear()
        self._reap()
        self.save()

    def start_cluster(
        self, profile: str, failback: str = "auto", suspect_after: float | None = None
    ) -> None:
        """A new cluster (fresh state dirs, this profile) on the existing hosts."""
        if profile not in PROFILES:
            raise ConfigError(f"lab profile {profile!r}: use one of {', '.join(PROFILES)}")
        self.stop_cluster()
        self.profile, self.failback, self.suspect_after = profile, failback, suspect_after
        for node in self.layout.nodes:
            shutil.rmtree(self.state_dir(node), ignore_errors=True)
            shutil.rmtree(self.runtime_dir(node), ignore_errors=True)
        text = lab_config(
            self.layout, self.lab_dir, secret_file=lab_secret_file(self.lab_dir),
            profile=profile, failback=failback, suspect_after=suspect_after,
        )  # fmt: skip
        self.config_path.write_text(text)
        for node in self.layout.nodes:
            self.start_agent(node)

    def state_dir(self, node: str) -> Path:
        return self.lab_dir / node

    def runtime_dir(self, node: str) -> Path:
        return self.lab_dir / f"{node}-run"

    def log_path(self, node: str) -> Path:
        return self.lab_dir / f"{node}.log"

    def netns_argv(self, host: str, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.layout.host_ns(host), *argv]

    def start_agent(self, node: str) -> AgentRef:
        if node not in self.layout.nodes:
            raise ConfigError(
                f"no node {node!r} in this lab; nodes are {', '.join(self.layout.nodes)}"
            )
        ref = self.agents.get(node)
        if ref is not None and ref.alive():
            return ref
        self.runtime_dir(node).mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable, "-m", "hakeeper", "agent", "--config", str(self.config_path),
            "--node", node, "--state-dir", str(self.state_dir(node)),
        ]  # fmt: skip
        env = {**os.environ, "HA_RSCTMP": str(self.runtime_dir(node))}
        with self.log_path(node).open("ab") as out:
            child = subprocess.Popen(
                self.netns_argv(node, argv), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, env=env,
            )  # fmt: skip
        start_time = process_start_time(child.pid)
        if start_time is None:
            raise HakeeperError(f"agent {node} exited at once; see {self.log_path(node)}")
        self._children[child.pid] = child
        ref = AgentRef(child.pid, start_time)
        self.agents[node] = ref
        self.save()
        target = self.target(node, agent_pid=child.pid)
        write_target(self.fence_dir, node, {"kind": "netns", **_target_json(target)})
        return ref

    def _reap(self) -> None:
        for pid, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[pid]

    def agent_state(self, node: str) -> str:
        self._reap()
        ref = self.agents.get(node)
        return ref.state() if ref is not None else "gone"

    # --- faults --------------------------------------------------------------------------------

    def crash(self, node: str) -> None:
        """Power cut: cable pulled, every process of the host SIGKILLed."""
        self._node(node)
        self.target(node).off("node")
        self._reap()

    def target(self, node: str, agent_pid: int | None = None) -> NetnsTarget:
        """``node`` as its power switch sees it."""
        layout = self.layout
        return NetnsTarget(
            layout.host_ns(node),
            layout.switch_ns,
            layout.port(node),
            agent_pid,
            layout.address(node),
        )

    def freeze(self, node: str) -> None:
        self._signal_agent(node, signal.SIGSTOP)

    def thaw(self, node: str) -> None:
        self._signal_agent(node, signal.SIGCONT)

    def isolate(self, host: str) -> None:
        _set_port(self.layout.switch_ns, self.layout.port(host), up=False)

    def plug(self, host: str) -> None:
        """Cable back in, nothing else."""
        _set_port(self.layout.switch_ns, self.layout.port(host), up=True)

    def heal(self, host: str) -> None:
        """Cable back in; a node whose agent is gone (crashed, fenced) boots again."""
        self.plug(host)
        if host in self.layout.nodes and self.agent_state(host) == "gone":
            # /run does not survive a reboot.
            shutil.rmtree(self.runtime_dir(host), ignore_errors=True)
            self.start_agent(host)

    def _signal_agent(self, node: str, signum: int) -> None:
        self._node(node)
        ref = self.agents.get(node)
        if ref is None or not ref.alive():
            raise HakeeperError(f"the agent of {node} is not running; heal {node} to restart it")
        os.kill(ref.pid, signum)

    def _node(self, node: str) -> None:
        if node not in self.layout.nodes:
            raise ConfigError(
                f"no node {node!r} in this lab; nodes are {', '.join(self.layout.nodes)}"
            )

    # --- looking -------------------------------------------------------------------------------

    def exec(
        self, host: str, argv: Sequence[str], timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside ``host``'s namespace (bounded by ``timeout``)."""
        return subprocess.run(
            self.netns_argv(host, argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def holders(self) -> list[str]:
        return holders(self.layout, self.vip)

    def status(self) -> list[HostStatus]:
        out = []
        holding = set(self.holders())
        for host in self.layout.hosts:
            ns = self.layout.host_ns(host)
            exists = namespace_id(ns) is not None
            out.append(
                HostStatus(
                    host=host,
                    namespace=ns if exists else f"{ns} (missing)",
                    address=self.layout.address(host),
                    port_up=port_is_up(self.layout.switch_ns, self.layout.port(host)),
                    agent=self.agent_state(host) if host in self.layout.nodes else "-",
                    processes=len(pids_in(ns)),
                    holds_vip=host in holding,
                )
            )
        return out

    def kill_host_processes(self, host: str) -> None:
        """SIGKILL everything in ``host``'s namespace, leaving its cable alone."""
        kill_all_in(self.layout.host_ns(host))
        self._reap()

    def tails(self, lines: int = 20) -> str:
        out = []
        for node in self.layout.nodes:
            try:
                text = self.log_path(node).read_text(errors="replace")
            except OSError:
                text = "(no log)"
            out.append(f"--- {node}\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(out)

    def wait(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        """Poll ``check()`` until true; HakeeperError with the agents' logs otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.05)
        raise HakeeperError(f"timed out after {timeout}s waiting for {what}\n{self.tails()}")


def _target_json(target: NetnsTarget) -> dict[str, object]:
    return {
        "netns": target.netns,
        "switch_netns": target.switch_netns,
        "port": target.port,
        "agent_pid": target.agent_pid,
        "address": target.address,
    }
