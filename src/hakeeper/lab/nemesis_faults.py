"""The nemesis's faults on a namespace lab: inject one, undo it, bring the lab back.

Every `FaultKind` of `nemesis_history` but ``slow-disk`` (see `UNAVAILABLE`). Node faults
use the lab's own (`NetnsLab`: power cut, SIGSTOP, switch port down); ``halves`` plugs the
smaller side's switch ports into a second bridge of the switch namespace (made by
`nemesis_stack.install_stack`; this kernel has no bridge VLAN filtering and the lab no
nftables), so both sides keep their carrier but cannot reach each other; the client stays
with the larger side. ``kill-*`` send SIGKILL to one process found in the
cluster when injected: a ``None`` from `Faults.inject` means no such process was found (no
controller, no single Raft leader, no primary) and nothing was done.

Only processes of this lab are signalled: agents the lab started (PID and start time
checked) and processes inside a node's own namespace.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from hakeeper.agents.netns import entered
from hakeeper.errors import HakeeperError
from hakeeper.lab.nemesis_history import FAULT_KINDS, FaultKind
from hakeeper.lab.nemesis_schedule import Part
from hakeeper.lab.nemesis_stack import STORE_PORT, LogReader, set_port_bridge
from hakeeper.lab.netns_fence import pids_in
from hakeeper.lab.netns_lab import NetnsLab
from hakeeper.lab.netns_topology import CLIENT

#: Kinds this lab cannot make, and why (printed in the report and the docs).
UNAVAILABLE = {
    "slow-disk": "the lab's nodes share the host's file system: a per-node delayed disk "
    "needs a dm-delay device per state dir (device-mapper and loop devices), not built yet",
}


def fault_kind(name: str) -> FaultKind:
    if name not in FAULT_KINDS:
        raise HakeeperError(f"unknown fault kind {name!r}; known: {', '.join(FAULT_KINDS)}")
    return cast(FaultKind, name)


@dataclass(frozen=True, slots=True)
class Injected:
    kind: FaultKind
    targets: tuple[str, ...]
    start: float
    undo: Callable[[], None]


class Faults:
    def __init__(self, lab: NetnsLab, logs: LogReader) -> None:
        self.lab = lab
        self.logs = logs
        self._halved: set[str] = set()

    def inject(self, part: Part) -> Injected | None:
        """Inject one fault now; None: its target was not found (nothing was done)."""
        kind = fault_kind(part.kind)
        if kind in UNAVAILABLE:
            raise HakeeperError(f"{kind} cannot be made in this lab: {UNAVAILABLE[kind]}")
        if kind in ("crash", "freeze", "isolate", "halves"):
            node = self.lab.layout.nodes[(part.node or 0) % len(self.lab.layout.nodes)]
            return self._node_fault(kind, node)
        if kind == "partition-controller":
            leader = self.logs.controller()
            if leader is None:
                return None
            self.lab.isolate(leader)
            return Injected(kind, (leader,), time.monotonic(), lambda: self.lab.heal(leader))
        if kind in ("kill-controller", "kill-raft-leader"):
            found = self.logs.controller() if kind == "kill-controller" else self.logs.raft_leader()
            if found is None:
                return None
            return self._kill_agent(kind, found)
        if kind == "kill-session-primary":
            return self._kill_primary()
        raise HakeeperError(f"no way to inject {kind!r} in this lab")

    def _node_fault(self, kind: FaultKind, node: str) -> Injected | None:
        lab = self.lab
        if kind == "crash":
            lab.crash(node)
            return Injected(kind, (node,), time.monotonic(), lambda: lab.heal(node))
        if kind == "freeze":
            if lab.agent_state(node) != "running":
                return None
            lab.freeze(node)
            return Injected(kind, (node,), time.monotonic(), lambda: self._thaw(node))
        if kind == "isolate":
            lab.isolate(node)
            return Injected(kind, (node,), time.monotonic(), lambda: lab.heal(node))
        self._move_port(node, cut=True)
        return Injected(kind, (node,), time.monotonic(), lambda: self._rejoin(node))

    def _thaw(self, node: str) -> None:
        # A frozen agent is usually fenced (powered off) before its thaw: then it boots again.
        if self.lab.agent_state(node) == "frozen":
            self.lab.thaw(node)
        self.lab.heal(node)

    def _rejoin(self, node: str) -> None:
        self._move_port(node, cut=False)
        self.lab.heal(node)

    def _kill_agent(self, kind: FaultKind, node: str) -> Injected | None:
        ref = self.lab.agents.get(node)
        if ref is None or not ref.alive():
            return None
        os.kill(ref.pid, signal.SIGKILL)
        return Injected(kind, (node,), time.monotonic(), lambda: self.lab.heal(node))

    def _kill_primary(self) -> Injected | None:
        node = session_primary(self.lab)
        if node is None:
            return None
        pids = [p for p in pids_in(self.lab.layout.host_ns(node)) if _is_store(p)]
        if not pids:
            return None
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # The cluster restarts it (its monitor fails); nothing to undo.
        return Injected("kill-session-primary", (node,), time.monotonic(), lambda: None)

    def _move_port(self, node: str, *, cut: bool) -> None:
        set_port_bridge(self.lab, node, cut=cut)
        (self._halved.add if cut else self._halved.discard)(node)

    def recover_all(self) -> None:
        """Undo whatever may be left: VLANs back, frozen agents thawed, cables in, agents up."""
        for node in list(self._halved):
            self._move_port(node, cut=False)
        for node in self.lab.layout.nodes:
            if self.lab.agent_state(node) == "frozen":
                self.lab.thaw(node)
            self.lab.heal(node)


def _is_store(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"hakeeper.sessions" in cmdline


#: What a store's ``stats`` says in ``hakeeper_role`` (docs/sessions.md): the lab reads the
#: store as a client does, off the wire.
PRIMARY, REPLICA = "primary", "replica"


def store_role(lab: NetnsLab, node: str, timeout: float = 1.0) -> tuple[str, int] | None:
    """``(hakeeper_role, hakeeper_epoch)`` of ``node``'s store, asked from the client host
    (None: no answer)."""
    found: list[tuple[str, int]] = []

    def ask() -> None:
        with entered(lab.layout.host_ns(CLIENT)), contextlib.suppress(OSError, ValueError):
            with socket.create_connection((lab.layout.address(node), STORE_PORT), timeout) as s:
                s.settimeout(timeout)
                s.sendall(b"stats\r\n")
                data = b""
                while not data.endswith(b"END\r\n") and len(data) < 65536:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            stats = dict(
                line.split(" ", 2)[1:3]
                for line in data.decode(errors="replace").splitlines()
                if line.startswith("STAT ") and line.count(" ") >= 2
            )
            found.append((stats.get("hakeeper_role", ""), int(stats.get("hakeeper_epoch", "0"))))

    thread = threading.Thread(target=ask, name="store-stats")
    thread.start()
    thread.join(timeout * 3)
    return found[0] if found else None


def session_primary(lab: NetnsLab) -> str | None:
    """The node whose store says it is primary, of the highest epoch among those."""
    best: tuple[int, str] | None = None
    for node in lab.layout.nodes:
        role = store_role(lab, node)
        if role is not None and role[0] == PRIMARY and (best is None or role[1] > best[0]):
            best = (role[1], node)
    return None if best is None else best[1]
