"""The nemesis's stack on a namespace lab, and how it is found from outside the nodes.

On top of the lab's cluster (`netns_lab.lab_config`: the VIP colocated with the ``web``
clone, fencing through the lab's power switch; ``no_quorum_policy = "demote"``), the
nemesis adds:

- ``lb``: hakeeper's balancer as a resource, on the VIP's node (colocated, started after
  it). Two frontends on the VIP: HTTP on port 80 over the ``web`` clone's instances on every
  node, and TCP on port 11211 over the session store's primary (``role = "promoted"``).
- ``store``: the replicated session store, a promotable clone on every node (3 replicas).
- ``singleton``: an exclusive service (`hakeeper.lab.http_app`) that appends its own
  ``start``/``stop`` lines to the run's `SINGLETON_FILE`, so two holders show in its records.

Who is what, seen from outside (every answer may be stale by the time it is used; the run
records what it injected, not what it meant to):

- the controller and the Raft leader: the agents' own log lines (``event=controller_start
  node= term=`` and ``event=raft_state ... to=leader``), the latest one of a running agent;
- the session primary: each store's ``stats`` (``hakeeper_role``, ``hakeeper_epoch``),
  asked on its client port from the client namespace.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from hakeeper.errors import HakeeperError
from hakeeper.lab.nemesis_history import SINGLETON_FILE
from hakeeper.lab.netns_lab import HTTP_PORT, NetnsLab

LB_HTTP_PORT = 80
LB_SESSIONS_PORT = 11211
STORE_PORT = 11311
SINGLETON_PORT = 8090
BALANCER_FILE = "balancer.toml"


def balancer_file(lab: NetnsLab) -> str:
    """The balancer's own file: both frontends on the VIP, backends following the clones."""
    cluster = lab.config_path
    return "\n".join(
        [
            "[[frontend]]",
            'name = "web"',
            f'bind = "{lab.vip}:{LB_HTTP_PORT}"',
            'mode = "http"',
            'backend = "web"',
            "",
            "[[frontend]]",
            'name = "sessions"',
            f'bind = "{lab.vip}:{LB_SESSIONS_PORT}"',
            'mode = "tcp"',
            'backend = "sessions"',
            "",
            "[[backend]]",
            'name = "web"',
            f'clone = {{ resource = "web", port = {HTTP_PORT}, cluster_config = "{cluster}" }}',
            # Probe often: a crashed node's instance must leave fast (its lease is slower).
            'check = { type = "http", path = "/", inter = 0.5, fall = 2, rise = 1 }',
            "",
            "[[backend]]",
            'name = "sessions"',
            f'clone = {{ resource = "store", port = {STORE_PORT}, cluster_config = "{cluster}",'
            ' role = "promoted" }',
            'check = { type = "tcp", inter = 0.5, fall = 2, rise = 1 }',
            "",
        ]
    )


def stack_sections(lab: NetnsLab, run_dir: Path) -> str:
    """What the nemesis adds to the lab's cluster file (TOML, appended)."""
    nodes = ", ".join(f'{n} = "{lab.layout.address(n)}"' for n in lab.layout.nodes)
    singleton = (
        f"{sys.executable} -m hakeeper.lab.http_app --port {SINGLETON_PORT} --bind 0.0.0.0 "
        f"--name singleton --record {run_dir / SINGLETON_FILE}"
    )
    return "\n".join(
        [
            "",
            "[resources.lb]",
            'agent = "balancer"',
            f'params = {{ config = "{lab.lab_dir / BALANCER_FILE}" }}',
            "",
            "[[constraints.colocation]]",
            'resource = "lb"',
            'with = "vip"',
            "",
            "[[constraints.order]]",
            'first = "vip"',
            'then = "lb"',
            "",
            "[resources.store]",
            'agent = "sessions"',
            f"params = {{ port = {STORE_PORT}, nodes = {{ {nodes} }} }}",
            'ops.monitor = { interval = "1s", timeout = "10s" }',
            "",
            "[clones.sessions]",
            'resource = "store"',
            "promotable = true",
            "",
            "[resources.singleton]",
            'agent = "process"',
            f'params = {{ command = "{singleton}" }}',
            "",
        ]
    )


def build_stack(
    lab_dir: Path, run_dir: Path, *, profile: str, suspect_after: float | None
) -> NetnsLab:
    """A three-node lab with a client, running the nemesis's stack. On failure, nothing
    is left behind (the lab is torn down) and the error is raised."""
    # "demote": a quorum loss of the whole cluster (every lease lapsed at once: the third
    # 1-hour run's host stall) demotes the store's primary and keeps its replicas, so the
    # in-memory store keeps its data; everything else stops, as under "stop".
    lab = NetnsLab.create(
        lab_dir, nodes=3, client=True, profile=profile, suspect_after=suspect_after,
        start_agents=False, no_quorum_policy="demote",
    )  # fmt: skip
    try:
        install_stack(lab, run_dir)
    except BaseException:
        lab.down()
        raise
    return lab


def install_stack(lab: NetnsLab, run_dir: Path) -> None:
    """Write the stack's files, give the switch its second bridge, start every agent."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (lab.lab_dir / BALANCER_FILE).write_text(balancer_file(lab))
    text = lab.config_path.read_text()
    lab.config_path.write_text(text + stack_sections(lab, run_dir))
    # The other side of `halves`: a second bridge in the switch namespace, no port yet.
    ns, bridge = lab.layout.switch_ns, cut_bridge(lab)
    _run(["ip", "-n", ns, "link", "add", bridge, "type", "bridge", "stp_state", "0",
          "forward_delay", "0"])  # fmt: skip
    _run(["ip", "-n", ns, "link", "set", "dev", bridge, "up"])
    for node in lab.layout.nodes:
        lab.start_agent(node)


def cut_bridge(lab: NetnsLab) -> str:
    """The bridge a `halves` fault moves the smaller side's ports to."""
    return f"{lab.layout.prefix}cut"


def set_port_bridge(lab: NetnsLab, host: str, *, cut: bool) -> None:
    """Plug ``host``'s switch port into the cut bridge, or back into the lab's own."""
    bridge = cut_bridge(lab) if cut else lab.layout.bridge
    _run(["ip", "-n", lab.layout.switch_ns, "link", "set", "dev", lab.layout.port(host),
          "master", bridge])  # fmt: skip


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise HakeeperError(f"{' '.join(argv)} failed: {done.stderr.strip()}")


# --- who is what ---------------------------------------------------------------------------

_CONTROLLER = re.compile(r"event=controller_start node=(\S+) term=(\d+)")
#: The first line an agent logs: a killed or crashed leader's last state is no longer its own.
_AGENT_START = "event=crm_tools_listening"
_RAFT = re.compile(r"event=raft_state from=\S+ to=(\w+)")


@dataclass(frozen=True, slots=True)
class LogView:
    """What one agent's log said last (read incrementally by `LogReader`)."""

    raft_state: str  # follower | candidate | leader | "" (nothing logged yet)
    leaderships: int  # times it became the Raft leader
    controller_term: int  # the latest controller term it started (0: never)


class LogReader:
    """Follows every agent's log from its current end; cheap to call every 0.5 s."""

    def __init__(self, lab: NetnsLab) -> None:
        self._lab = lab
        self._offsets = {n: 0 for n in lab.layout.nodes}
        self._views = {n: LogView("", 0, 0) for n in lab.layout.nodes}
        # The leader sampler and the fault injector read from two threads.
        self._lock = threading.Lock()

    def read(self) -> dict[str, LogView]:
        with self._lock:
            return self._read()

    def _read(self) -> dict[str, LogView]:
        for node in self._lab.layout.nodes:
            try:
                with self._lab.log_path(node).open("rb") as log:
                    log.seek(self._offsets[node])
                    data = log.read()
            except OSError:
                continue
            cut = data.rfind(b"\n") + 1  # only whole lines
            self._offsets[node] += cut
            view = self._views[node]
            state, won, term = view.raft_state, view.leaderships, view.controller_term
            for line in data[:cut].decode(errors="replace").splitlines():
                if _AGENT_START in line:
                    state = ""  # a new agent process: a follower until it logs otherwise
                elif (m := _RAFT.search(line)) is not None:
                    state = m.group(1)
                    won += state == "leader"
                elif (m := _CONTROLLER.search(line)) is not None and m.group(1) == node:
                    term = max(term, int(m.group(2)))
            self._views[node] = LogView(state, won, term)
        return dict(self._views)

    def raft_leader(self) -> str | None:
        """The running agent that last logged becoming the Raft leader and has not left it."""
        views = self.read()
        leaders = [n for n, v in views.items() if v.raft_state == "leader" and self._running(n)]
        return leaders[0] if len(leaders) == 1 else None

    def controller(self) -> str | None:
        """The running agent that started the highest controller term."""
        views = self.read()
        running = [(v.controller_term, n) for n, v in views.items() if self._running(n)]
        best = max(running, default=(0, ""))
        return best[1] if best[0] > 0 else None

    def _running(self, node: str) -> bool:
        return self._lab.agent_state(node) == "running"
