"""keepalived (Debian's) on the namespace lab's hosts: the side-by-side failover anchor.

One ``keepalived -n -P`` per node namespace, each with its own config and pid files
(``-p``/``-r``: several instances on one machine must not share them), one VRRP instance
holding the lab VIP on ``eth0``: ``n1`` priority 200, the others 100, 50. ``advert_int`` 1
runs VRRPv2; a sub-second ``advert_int`` needs VRRPv3 (``vrrp_version 3``).

Faults (shared/ANCHORS.md pitfalls): ``kill -9`` of keepalived's main PID is not a crash
(its VRRP child gets SIGTERM through pdeathsig, sends priority 0 and releases the VIP).
`crash_vrrp` SIGSTOPs the parent, SIGKILLs the VRRP child (its PID from the ``-r`` file),
then SIGKILLs the parent: keepalived dies without any cleanup. A node crash adds the host's
power cut (`NetnsLab.crash`); "only keepalived died" leaves the host up with the VIP.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hakeeper.errors import HakeeperError
from hakeeper.lab.netns_lab import HTTP_PORT, NetnsLab

PRIORITIES = (200, 100, 50)


@dataclass(frozen=True, slots=True)
class Started:
    parent: int
    vrrp_pidfile: Path


def keepalived_config(lab: NetnsLab, node: str, advert_int: float) -> str:
    index = lab.layout.nodes.index(node)
    priority = PRIORITIES[index] if index < len(PRIORITIES) else 10
    version = 2 if advert_int >= 1 else 3
    return f"""global_defs {{
    router_id {node}
    vrrp_version {version}
    script_user root
}}
vrrp_instance lab {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int {advert_int:g}
    virtual_ipaddress {{
        {lab.vip}/{lab.layout.prefixlen} dev eth0
    }}
}}
"""


class KeepalivedCluster:
    """keepalived plus the demo web server on every node of a lab with no hakeeper running."""

    def __init__(self, lab: NetnsLab, advert_int: float) -> None:
        self.lab = lab
        self.advert_int = advert_int
        self.dir = lab.lab_dir / "keepalived"
        self.started: dict[str, Started] = {}
        self._children: list[subprocess.Popen[bytes]] = []

    def _spawn(self, node: str, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            child = subprocess.Popen(
                self.lab.netns_argv(node, argv), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        self._children.append(child)
        return child

    def start(self) -> None:
        self.lab.stop_cluster()
        self.dir.mkdir(parents=True, exist_ok=True)
        for node in self.lab.layout.nodes:
            self.start_node(node)

    def start_node(self, node: str) -> None:
        """The web server and keepalived on ``node`` (again, after a crash)."""
        web = [sys.executable, "-m", "hakeeper.lab.http_app", "--port", str(HTTP_PORT),
               "--bind", "0.0.0.0", "--name", "web"]  # fmt: skip
        self._spawn(node, ["env", f"HAKEEPER_NODE={node}", *web], self.dir / f"{node}-web.log")
        conf = self.dir / f"{node}.conf"
        conf.write_text(keepalived_config(self.lab, node, self.advert_int))
        vrrp_pid, main_pid = self.dir / f"{node}-vrrp.pid", self.dir / f"{node}.pid"
        # A crashed keepalived leaves its pid files; an unreaped zombie under that PID would
        # make the new one refuse to start ("daemon is already running").
        self.reap()
        vrrp_pid.unlink(missing_ok=True)
        main_pid.unlink(missing_ok=True)
        argv = ["keepalived", "-n", "-l", "-P", "-f", str(conf),
                "-p", str(main_pid), "-r", str(vrrp_pid)]  # fmt: skip
        child = self._spawn(node, argv, self.dir / f"{node}.log")
        self.started[node] = Started(child.pid, vrrp_pid)

    def reboot(self, node: str) -> None:
        """A crashed host back: cable in, web server and keepalived started afresh."""
        self.lab.plug(node)
        self.start_node(node)

    def vrrp_child(self, node: str, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        path = self.started[node].vrrp_pidfile
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                return int(path.read_text().strip())
            time.sleep(0.05)
        raise HakeeperError(f"keepalived on {node} wrote no VRRP pid file {path}")

    def crash_vrrp(self, node: str) -> None:
        """keepalived dies with no cleanup: parent stopped, VRRP child killed, parent killed."""
        parent = self.started[node].parent
        child = self.vrrp_child(node)
        os.kill(parent, signal.SIGSTOP)
        os.kill(child, signal.SIGKILL)
        os.kill(parent, signal.SIGKILL)
        self.reap()

    def reap(self) -> None:
        for child in list(self._children):
            if child.poll() is not None:
                self._children.remove(child)

    def stop(self) -> None:
        self.lab.stop_cluster()  # kills everything in the node namespaces, drops the VIP
        for child in self._children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(5)
        self._children.clear()
