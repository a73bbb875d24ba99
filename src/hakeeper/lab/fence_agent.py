"""``fence_hakeeper_lab``: the fence device of hakeeper's labs, speaking the fence-agents protocol.

A real cluster fences through ``fence_ipmilan`` or a PDU; the labs have no power switch, so
this agent plays one. It reads ``key=value`` lines on stdin like every ClusterLabs agent
(``action``, ``port``/``plug``, its own ``targets_dir`` and ``scope``) and answers with the same
exit codes, so the controller runs the very code path it runs with real hardware.

What "power" means for a lab node is described by ``<targets_dir>/<port>.json``, written by
the lab each time it starts the node, and dispatched on its ``kind`` through `TARGET_KINDS`:

- ``loopback`` (this module): the node's agent process and every process its resources
  started, each identified by PID *and* start time so a reused PID is never hit.
- ``netns`` (`hakeeper.lab.netns_fence`): every process of the host's network namespace,
  and its switch port.

``scope = "node"`` (default) is a power cut. ``scope = "resources"`` kills only what the
node's resources run and leaves the agent alone: fabric fencing, which cuts a node off its
service while its OS keeps running, so a paused agent that resumes must find itself fenced.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, cast

from hakeeper.agents.procfs import process_start_time

Scope = Literal["node", "resources"]
#: Lazily imported "module:Class" per target kind (a kind's module may need pyroute2).
TARGET_KINDS: dict[str, str] = {
    "loopback": "hakeeper.lab.fence_agent:LoopbackTarget",
    "netns": "hakeeper.lab.netns_fence:NetnsTarget",
}
POWER_TIMEOUT = 10.0

# fence-agents exit codes
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_STATUS_OFF = 2


class Target(Protocol):
    """One lab node as a power switch sees it."""

    def off(self, scope: Scope) -> None: ...

    def is_off(self, scope: Scope) -> bool: ...


class TargetFactory(Protocol):
    def from_json(self, data: Mapping[str, object]) -> Target: ...


@dataclass(frozen=True, slots=True)
class ProcessRef:
    pid: int
    start_time: int

    def alive(self) -> bool:
        return process_start_time(self.pid) == self.start_time


@dataclass(frozen=True, slots=True)
class LoopbackTarget:
    """A node of `hakeeper.lab.loopback`: its agent, its resources' process groups, its /run."""

    agent: ProcessRef | None
    state_dir: Path
    runtime_dir: Path

    @staticmethod
    def from_json(data: Mapping[str, object]) -> LoopbackTarget:
        pid, start = data.get("agent_pid"), data.get("agent_start_time")
        agent = ProcessRef(int(cast(int, pid)), int(cast(int, start))) if pid and start else None
        return LoopbackTarget(agent, Path(str(data["state_dir"])), Path(str(data["runtime_dir"])))

    def resource_processes(self) -> list[ProcessRef]:
        """The process groups the node's resources started, from its agent's state files."""
        refs = []
        for state_file in (self.state_dir / "agents").glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                data = json.loads(state_file.read_text())
                refs.append(ProcessRef(int(data["pid"]), int(data["start_time"])))
        return refs

    def off(self, scope: Scope) -> None:
        if scope == "node" and self.agent is not None and self.agent.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.agent.pid, signal.SIGKILL)
        for ref in self.resource_processes():
            if ref.alive():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(ref.pid, signal.SIGKILL)
        if scope == "node":
            shutil.rmtree(self.runtime_dir, ignore_errors=True)

    def is_off(self, scope: Scope) -> bool:
        if scope == "node" and self.agent is not None and self.agent.alive():
            return False
        return not any(ref.alive() for ref in self.resource_processes())


def target_factory(kind: str) -> TargetFactory:
    if kind not in TARGET_KINDS:
        raise KeyError(f"unknown lab target kind {kind!r} (known: {', '.join(TARGET_KINDS)})")
    module_name, _, attr = TARGET_KINDS[kind].partition(":")
    return cast(TargetFactory, getattr(importlib.import_module(module_name), attr))


def write_target(targets_dir: Path, node: str, description: Mapping[str, object]) -> None:
    """Record how to power off ``node`` (atomically: a fence may read it at any moment)."""
    targets_dir.mkdir(parents=True, exist_ok=True)
    tmp = targets_dir / f".{node}.json.tmp"
    tmp.write_text(json.dumps(dict(description)))
    tmp.replace(targets_dir / f"{node}.json")


FENCE_LOG = "fence.log"


def record_off(targets_dir: Path, node: str, at: float) -> None:
    """Append when ``node`` was confirmed off (system-wide monotonic clock), so a checker
    can end the intervals of what it ran there."""
    with (targets_dir / FENCE_LOG).open("a") as log:
        log.write(f"off {node} {at:.6f}\n")


def read_offs(targets_dir: Path) -> dict[str, list[float]]:
    offs: dict[str, list[float]] = {}
    path = targets_dir / FENCE_LOG
    if path.exists():
        for line in path.read_text().splitlines():
            what, node, at = line.split()
            if what == "off":
                offs.setdefault(node, []).append(float(at))
    return offs


def parse_stdin(text: str) -> dict[str, str]:
    """fence-agents' stdin: ``key=value`` lines, ``#`` comments, last duplicate wins,
    ``-`` and ``_`` equivalent, surrounding quotes stripped, legacy ``option`` = ``action``."""
    options: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().replace("-", "_")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        options["action" if key == "option" else key] = value
    if "plug" in options and "port" not in options:
        options["port"] = options["plug"]
    return options


METADATA = """<?xml version="1.0" ?>
<resource-agent name="fence_hakeeper_lab" shortdesc="Fence agent for hakeeper's lab nodes">
<longdesc>Powers off a node of a hakeeper lab (loopback processes or a network namespace host)
by killing what it runs. For labs and demos only.</longdesc>
<parameters>
  <parameter name="action" unique="0" required="1">
    <getopt mixed="-o, --action=[action]"/>
    <content type="string" default="reboot"/>
    <shortdesc lang="en">Fencing action</shortdesc>
  </parameter>
  <parameter name="port" unique="0" required="0">
    <getopt mixed="-n, --plug=[id]"/>
    <content type="string"/>
    <shortdesc lang="en">Lab node to act on</shortdesc>
  </parameter>
  <parameter name="plug" unique="0" required="0" obsoletes="port">
    <content type="string"/>
    <shortdesc lang="en">Lab node to act on</shortdesc>
  </parameter>
  <parameter name="targets_dir" unique="0" required="1">
    <content type="string"/>
    <shortdesc lang="en">Directory of the lab's NODE.json target descriptions</shortdesc>
  </parameter>
  <parameter name="scope" unique="0" required="0">
    <content type="select" default="node"><option value="node"/><option value="resources"/>
    </content>
    <shortdesc lang="en">node: power cut; resources: fabric fencing of its services</shortdesc>
  </parameter>
  <parameter name="power_timeout" unique="0" required="0">
    <content type="second" default="10"/>
    <shortdesc lang="en">Seconds to wait for the node to be off</shortdesc>
  </parameter>
</parameters>
<actions>
  <action name="on"/><action name="off"/><action name="reboot"/><action name="status"/>
  <action name="list"/><action name="list-status"/><action name="monitor"/>
  <action name="metadata"/><action name="validate-all"/>
</actions>
</resource-agent>
"""


class LabFenceError(Exception):
    """A request this agent cannot carry out (exit 1 with the message on stderr)."""


@dataclass(frozen=True, slots=True)
class Request:
    action: str
    port: str
    targets_dir: Path | None
    scope: Scope
    power_timeout: float

    @staticmethod
    def parse(options: Mapping[str, str]) -> Request:
        scope = options.get("scope", "node")
        if scope not in ("node", "resources"):
            raise LabFenceError(f"scope={scope!r}: use node or resources")
        try:
            power_timeout = float(options.get("power_timeout", POWER_TIMEOUT))
        except ValueError:
            raise LabFenceError("power_timeout must be a number of seconds") from None
        folder = options.get("targets_dir")
        return Request(
            options.get("action", "reboot"),
            options.get("port", ""),
            Path(folder) if folder else None,
            cast(Scope, scope),
            power_timeout,
        )

    def folder(self) -> Path:
        if self.targets_dir is None:
            raise LabFenceError("targets_dir is required (the lab's fence-targets directory)")
        return self.targets_dir

    def target(self) -> Target:
        if not self.port:
            raise LabFenceError(f"action {self.action} needs port= (the node name)")
        path = self.folder() / f"{self.port}.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise LabFenceError(f"no lab target for node {self.port!r} ({path}: {exc})") from exc
        try:
            return target_factory(str(data.get("kind"))).from_json(data)
        except (KeyError, ValueError, TypeError) as exc:
            raise LabFenceError(f"lab target {path} is unusable: {exc}") from exc


def run(
    options: Mapping[str, str],
    out: Callable[[str], None],
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """One fence-agents request; returns the exit code. ``out`` gets stdout lines."""
    request = Request.parse(options)
    action = request.action
    if action == "metadata":
        out(METADATA)
        return EXIT_OK
    if action in ("monitor", "validate-all"):
        return EXIT_OK if request.folder().is_dir() else EXIT_FAILED
    if action in ("list", "list-status"):
        for path in sorted(request.folder().glob("*.json")):
            if action == "list":
                out(f"{path.stem},")
            else:
                request_n = Request(
                    "status", path.stem, request.targets_dir, request.scope, request.power_timeout
                )
                state = "OFF" if request_n.target().is_off(request.scope) else "ON"
                out(f"{path.stem},,{state}")
        return EXIT_OK
    target = request.target()
    if action == "status":
        return EXIT_STATUS_OFF if target.is_off(request.scope) else EXIT_OK
    if action in ("off", "reboot"):
        # A lab node has no power-on: "reboot" powers it off and the lab revives it.
        target.off(request.scope)
        deadline = clock() + request.power_timeout
        while not target.is_off(request.scope):
            if clock() >= deadline:
                raise LabFenceError(
                    f"{request.port} still runs {request.power_timeout:g}s after power off"
                )
            sleep(0.01)
            target.off(request.scope)
        record_off(request.folder(), request.port, clock())
        return EXIT_OK
    if action == "on":
        raise LabFenceError("a lab node cannot be powered on by its fence device: revive it")
    raise LabFenceError(f"unknown action {action!r}")


def main() -> None:
    """Console script ``fence_hakeeper_lab``."""
    # Every kind's module before the request is read: a prestarted agent
    # (`hakeeper.fencing.prestart`) has them loaded by the time its request comes.
    for kind in TARGET_KINDS:
        target_factory(kind)
    try:
        code = run(parse_stdin(sys.stdin.read()), print)
    except LabFenceError as exc:
        print(f"fence_hakeeper_lab: {exc}", file=sys.stderr)
        code = EXIT_FAILED
    # The fencing daemon waits for this exit, and recovery waits for the daemon: skip the
    # interpreter's teardown (~6 ms measured, part of every failover's outage).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
