"""Power for a network-namespace lab host: its processes and its switch port.

A host of `hakeeper.lab.netns_lab` is a network namespace; "every process of the host" is
every process whose ``/proc/<pid>/ns/net`` is that namespace (compared by device and inode,
so only namespaces the lab made can match), and its "cable" is the veth end in the switch
namespace. `NetnsTarget` is kind ``netns`` of the lab fence agent
(`hakeeper.lab.fence_agent.TARGET_KINDS`): off = take its switch port down, SIGKILL every
process of the host and drop the addresses its resources added (a powered-off machine holds
no address); off is confirmed when the port is down and every process left is `dying`
(SIGKILLed: it never runs again, as after a power cut), without waiting for the kernel to
free their memory (tens of milliseconds of the failover, not of the machine's state).

Sync code; it enters namespaces only on short-lived threads of its own (`call_in_thread`),
so the calling process never looks like a process of a lab host. No pyroute2 here: a fence
agent is a fresh process per fence, and its import time would be outage
(`hakeeper.lab.rtnetlink`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from hakeeper.agents import rtnetlink
from hakeeper.agents.netns import call_in_thread, netns_path

Scope = Literal["node", "resources"]
KILL_ROUNDS_TIMEOUT = 5.0


def namespace_id(name: str) -> tuple[int, int] | None:
    """(st_dev, st_ino) of namespace ``name``, or None when it does not exist."""
    try:
        st = os.stat(netns_path(name))
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def pids_in(name: str) -> list[int]:
    """PIDs of every process inside network namespace ``name`` (never this process)."""
    wanted = namespace_id(name)
    if wanted is None:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == wanted:
            found.append(int(entry))
    return found


#: /proc/<pid>/stat, counted from the field after the command's closing parenthesis.
_STATE, _FLAGS, _PENDING = 0, 6, 28
_PF_EXITING = 0x4
_SIGKILL_BIT = 1 << (signal.SIGKILL - 1)


def dying(pid: int) -> bool:
    """Whether process ``pid`` will never run its own code again: every thread of it gone, a
    zombie, exiting, or with SIGKILL pending (a SIGKILL is set pending on every thread of the
    process at once, and no thread returns to user space with it). As final as a power cut,
    though the kernel may still be freeing its memory for tens of milliseconds."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return True
    return all(_thread_dying(f"/proc/{pid}/task/{tid}/stat") for tid in threads)


def _thread_dying(stat_path: str) -> bool:
    try:
        with open(stat_path, "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return True
    if fields[_STATE] in (b"Z", b"X", b"x"):
        return True
    return bool(int(fields[_FLAGS]) & _PF_EXITING or int(fields[_PENDING]) & _SIGKILL_BIT)


def kill_all_in(
    name: str,
    *,
    spare: frozenset[int] = frozenset(),
    timeout: float = 5.0,
    until_gone: bool = True,
) -> None:
    """SIGKILL every process of namespace ``name`` (except ``spare``), again until none is left
    or ``timeout`` passes (a process may fork between the listing and the kill).

    ``until_gone=False``: done once every process left is `dying`, without waiting for the
    kernel to free them: enough for a power fence (nothing there acts again), not for a
    restart on the same host (a dying process still holds its ports)."""
    deadline = time.monotonic() + timeout
    while True:
        victims = [
            pid for pid in pids_in(name) if pid not in spare and (until_gone or not dying(pid))
        ]
        if not victims or time.monotonic() >= deadline:
            return
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if until_gone:
            time.sleep(0.005)


def set_port(switch_ns: str, port: str, up: bool) -> None:
    """Link state of ``port`` (a veth end in the switch namespace): the host's cable.
    FileNotFoundError when the switch or the port is gone."""
    if namespace_id(switch_ns) is None:
        raise FileNotFoundError(f"no switch namespace {switch_ns}")
    try:
        call_in_thread(switch_ns, rtnetlink.set_link_up, port, up)
    except OSError as exc:
        raise FileNotFoundError(f"no port {port} in switch namespace {switch_ns}") from exc


def _flush(keep: str | None, ifname: str) -> None:
    try:
        addresses = rtnetlink.addresses(ifname)
    except OSError:
        return
    for address, prefixlen in addresses:
        if address != keep:
            with contextlib.suppress(OSError):
                rtnetlink.delete_ipv4(ifname, address, prefixlen)


def flush_addresses(ns: str, keep: str | None, ifname: str = "eth0") -> None:
    """Remove every IPv4 address of ``ifname`` in ``ns`` but ``keep``: what a host loses when
    its power goes (addresses a resource added live in RAM; the configured one comes back)."""
    if namespace_id(ns) is not None:
        call_in_thread(ns, _flush, keep, ifname)


def _is_up(port: str) -> bool:
    try:
        return rtnetlink.link_is_up(port)
    except OSError:
        return False


def port_is_up(switch_ns: str, port: str) -> bool:
    """Administrative state of ``port``; False when the port (or the switch) is gone."""
    if namespace_id(switch_ns) is None:
        return False
    return call_in_thread(switch_ns, _is_up, port)


@dataclass(frozen=True, slots=True)
class NetnsTarget:
    """One lab host as its power switch sees it."""

    netns: str
    switch_netns: str
    port: str
    agent_pid: int | None = None
    address: str | None = None  # the host's own lab address, kept across a power cycle

    @staticmethod
    def from_json(data: Mapping[str, object]) -> NetnsTarget:
        pid = data.get("agent_pid")
        return NetnsTarget(
            netns=str(data["netns"]),
            switch_netns=str(data["switch_netns"]),
            port=str(data["port"]),
            agent_pid=int(str(pid)) if pid else None,
            address=str(data["address"]) if data.get("address") else None,
        )

    def _spare(self, scope: Scope) -> frozenset[int]:
        # Fabric fencing cuts the host off and kills its services; the agent survives to
        # find itself fenced when it next talks to the cluster.
        if scope == "resources" and self.agent_pid is not None:
            return frozenset({self.agent_pid})
        return frozenset()

    def off(self, scope: Scope) -> None:
        # The cable first: whatever survives the kill a moment longer can no longer answer.
        with contextlib.suppress(FileNotFoundError):
            set_port(self.switch_netns, self.port, up=False)
        kill_all_in(
            self.netns, spare=self._spare(scope), timeout=KILL_ROUNDS_TIMEOUT, until_gone=False
        )
        if scope == "node":
            flush_addresses(self.netns, self.address)

    def is_off(self, scope: Scope) -> bool:
        spare = self._spare(scope)
        left = [pid for pid in pids_in(self.netns) if pid not in spare and not dying(pid)]
        return not left and not port_is_up(self.switch_netns, self.port)
