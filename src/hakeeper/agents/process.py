"""``process``: a command hakeeper supervises itself — start, stop, monitor, probe.

The command runs in its own session (so its process group is ours to signal) with stdout and
stderr appended to ``<state_dir>/<instance>.log``. Its PID and kernel start time (field 22 of
``/proc/<pid>/stat``) go to ``<state_dir>/<instance>.json``, so a restarted hakeeper agent
finds it again on its probe, and a PID the kernel has since given to another process (same
number, other start time) counts as not running.

Parameters: ``command`` (a string, split like a shell would, or a list), ``cwd``, ``env``
(``"K=V K2=V2"`` or a table), ``health_command``, ``health_url`` (``http://`` only),
``stop_timeout`` (default 10s: SIGTERM to the group, then SIGKILL), ``health_timeout``
(default 5s per check).
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from hakeeper.agents.base import (
    MetaData,
    OcfRc,
    OpRequest,
    OpResult,
    ParamSpec,
    log_op,
    make_result,
    unimplemented,
)
from hakeeper.agents.factory import AgentContext
from hakeeper.agents.metadata import check_params
from hakeeper.agents.procfs import process_start_time
from hakeeper.agents.runner import RESOURCE_UMASK, kill_group, live_group_members, run_action
from hakeeper.errors import ConfigError
from hakeeper.model.durations import parse_duration

# How long a fresh process must stay alive before start says SUCCESS (capped by the timeout).
START_SETTLE = 0.5
POLL = 0.1
# How often a stop looks for the group once SIGKILL is sent: it lands within milliseconds,
# and under a self-fence the stop's end is what lets the watchdog be fed (one POLL more put
# it at the lease's deadline itself; CI saw the instance still held there).
KILLED_POLL = 0.005
HEALTH_RETRY = 0.2
LOG_TAIL_BYTES = 4096

PARAMS = (
    ParamSpec("command", required=True, shortdesc="argv: a string (shell-split) or a list"),
    ParamSpec("cwd", shortdesc="working directory"),
    ParamSpec("env", shortdesc="extra environment: 'K=V K2=V2' or a table"),
    ParamSpec("health_command", shortdesc="healthy when it exits 0"),
    ParamSpec("health_url", shortdesc="healthy when GET answers below 400 (http:// only)"),
    ParamSpec("stop_timeout", type="duration", default="10s", shortdesc="SIGTERM→SIGKILL"),
    ParamSpec("health_timeout", type="duration", default="5s", shortdesc="per health check"),
)


def _open_private(path: Path, flags: int) -> int:
    """Create ``path`` 0600 whatever the umask (an existing file keeps its mode)."""
    return os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _argv(name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as exc:
            raise ConfigError(f"process parameter {name}: cannot split {value!r}: {exc}") from exc
    elif isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        argv = list(value)
    else:
        raise ConfigError(f"process parameter {name}: give a string or a list of strings")
    if not argv:
        raise ConfigError(f"process parameter {name} is empty; give the program to run")
    return tuple(argv)


def _env(value: object) -> tuple[tuple[str, str], ...]:
    if isinstance(value, Mapping):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    elif isinstance(value, str):
        pairs = []
        for word in shlex.split(value):
            key, sep, val = word.partition("=")
            if not sep or not key:
                raise ConfigError(f"process parameter env: {word!r} is not KEY=VALUE")
            pairs.append((key, val))
    else:
        raise ConfigError("process parameter env: give 'K=V K2=V2' or a table")
    return tuple(pairs)


@dataclass(frozen=True, slots=True)
class ProcessConfig:
    """The validated parameters of one ``process`` resource."""

    argv: tuple[str, ...]
    cwd: Path | None = None
    env: tuple[tuple[str, str], ...] = ()
    health_command: tuple[str, ...] | None = None
    health_url: str | None = None
    stop_timeout: float = 10.0
    health_timeout: float = 5.0

    @classmethod
    def from_params(cls, params: Mapping[str, object]) -> ProcessConfig:
        check_params("process agent", params, PARAMS)
        if "command" not in params:
            raise ConfigError("process agent needs parameter 'command' (the program to run)")
        url = params.get("health_url")
        if url is not None and (not isinstance(url, str) or not url.startswith("http://")):
            raise ConfigError(
                f"process parameter health_url: {url!r} must be an http:// URL "
                "(e.g. http://127.0.0.1:8080/health)"
            )
        health = params.get("health_command")
        cwd = params.get("cwd")
        return cls(
            argv=_argv("command", params["command"]),
            cwd=Path(str(cwd)) if cwd is not None else None,
            env=_env(params["env"]) if "env" in params else (),
            health_command=_argv("health_command", health) if health is not None else None,
            health_url=url,
            stop_timeout=_duration(params, "stop_timeout", 10.0),
            health_timeout=_duration(params, "health_timeout", 5.0),
        )


def _duration(params: Mapping[str, object], name: str, default: float) -> float:
    value = params.get(name)
    if value is None:
        return default
    if not isinstance(value, str | int | float):
        raise ConfigError(f"process parameter {name}: give a duration like '10s'")
    return parse_duration(value, what=f"process parameter {name}")


@dataclass(frozen=True, slots=True)
class Running:
    """What the state file says we started: enough to find it again, and only it."""

    pid: int
    start_time: int
    argv: tuple[str, ...]
    started_at: float

    def alive(self) -> bool:
        return process_start_time(self.pid) == self.start_time


class ProcessAgent:
    """One supervised command on this node."""

    def __init__(self, instance: str, config: ProcessConfig, *, state_dir: Path) -> None:
        self.instance = instance
        self.config = config
        self.state_dir = state_dir
        self.state_file = state_dir / f"{instance}.json"
        self.log_file = state_dir / f"{instance}.log"
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_spec(cls, target: str, context: AgentContext) -> ProcessAgent:
        return cls(
            context.instance,
            ProcessConfig.from_params(context.params),
            state_dir=context.state_dir,
        )

    def meta_data(self) -> MetaData:
        return MetaData(
            name="process",
            shortdesc="A command supervised by hakeeper",
            parameters=PARAMS,
        )

    # -- state file ---------------------------------------------------------------------

    def recorded(self) -> Running | None:
        """The process the state file names, or None (no file, or an unreadable one)."""
        try:
            data: dict[str, Any] = json.loads(self.state_file.read_text())
            return Running(
                pid=int(data["pid"]),
                start_time=int(data["start_time"]),
                argv=tuple(data.get("argv", ())),
                started_at=float(data.get("started_at", 0.0)),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return None  # a torn or foreign file names nothing we can trust

    def _record(self, running: Running) -> None:
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".json.tmp")
        data = {
            "pid": running.pid,
            "start_time": running.start_time,
            "argv": list(running.argv),
            "started_at": running.started_at,
        }
        # 0600: the argv may carry a credential.
        with os.fdopen(_open_private(tmp, os.O_WRONLY | os.O_TRUNC), "w") as handle:
            handle.write(json.dumps(data))
        tmp.replace(self.state_file)  # atomic: a crash leaves the old or the new file

    def _forget(self) -> None:
        self.state_file.unlink(missing_ok=True)

    def _reap(self) -> int | None:
        """Reap our own child if it exited; its exit code, else None."""
        if self._child is None:
            return None
        code = self._child.poll()
        if code is not None:
            self._child = None
        return code

    def _alive(self) -> Running | None:
        self._reap()
        running = self.recorded()
        return running if running is not None and running.alive() else None

    def _log_tail(self) -> str:
        try:
            with self.log_file.open("rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
                return f.read().decode(errors="replace").strip()
        except OSError:
            return ""

    def _child_env(self, req: OpRequest) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.config.env)
        env["HAKEEPER_EPOCH"] = str(req.epoch)
        env["HAKEEPER_RESOURCE"] = self.instance
        return env

    # -- health -------------------------------------------------------------------------

    async def _health(self, req: OpRequest, budget: float) -> str:
        """'' when healthy (or no check configured), else why not."""
        timeout = max(0.1, min(self.config.health_timeout, budget))
        if self.config.health_command is not None:
            try:
                done = await run_action(
                    self.config.health_command,
                    env=self._child_env(req),
                    timeout=timeout,
                    cwd=self.config.cwd,
                )
            except OSError as exc:
                return f"health command cannot run: {exc}"
            if done.timed_out:
                return f"health command did not answer within {timeout:g}s"
            if done.rc != 0:
                tail = done.output_tail(3).replace("\n", " | ")
                return f"health command exited {done.rc}" + (f": {tail}" if tail else "")
        if self.config.health_url is not None:
            url = self.config.health_url
            try:
                client_timeout = aiohttp.ClientTimeout(total=timeout)
                async with (
                    aiohttp.ClientSession(timeout=client_timeout) as session,
                    session.get(url, allow_redirects=False) as response,
                ):
                    if response.status >= 400:
                        return f"GET {url} answered {response.status}"
            except TimeoutError:
                return f"GET {url}: no answer within {timeout:g}s"
            except (aiohttp.ClientError, OSError) as exc:
                return f"GET {url}: {exc or type(exc).__name__}"
        return ""

    # -- operations ---------------------------------------------------------------------

    def _spawn(self, req: OpRequest) -> subprocess.Popen[bytes]:
        # Popen only forks and execs (no wait), so calling it from the event loop is fine;
        # it, not asyncio's subprocess, because the child must outlive this op and even us.
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # The log is 0600 (the service may print what others must not read).
        with os.fdopen(_open_private(self.log_file, os.O_WRONLY | os.O_APPEND), "ab") as log:
            return subprocess.Popen(
                self.config.argv,
                cwd=self.config.cwd,
                env=self._child_env(req),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                umask=RESOURCE_UMASK,
            )

    async def start(self, req: OpRequest) -> OpResult:
        async with self._lock:
            return log_op(await self._start(req), node=req.node, epoch=req.epoch)

    async def _start(self, req: OpRequest) -> OpResult:
        started = time.monotonic()
        deadline = started + req.timeout

        def result(rc: int, reason: str = "", *, timed_out: bool = False) -> OpResult:
            return make_result(
                "start",
                rc,
                started=started,
                resource=self.instance,
                exit_reason=reason,
                output_tail=self._log_tail() if rc else "",
                timed_out=timed_out,
            )

        if self._alive() is not None:
            return result(OcfRc.SUCCESS)
        try:
            child = self._spawn(req)
        except PermissionError as exc:
            return result(OcfRc.ERR_PERM, f"cannot run {self.config.argv[0]}: {exc}")
        except OSError as exc:
            # Missing program or cwd: this node lacks something (hard: try another node).
            return result(OcfRc.ERR_INSTALLED, f"cannot run {self.config.argv[0]}: {exc}")
        self._child = child
        start_time = process_start_time(child.pid)
        if start_time is None:  # already gone: a zombie, so this wait returns at once
            exit_code = child.wait(timeout=5.0)
            self._child = None
            return result(OcfRc.ERR_GENERIC, f"exited with code {exit_code} right after start")
        try:
            self._record(Running(child.pid, start_time, self.config.argv, time.time()))
        except OSError as exc:
            # Unrecorded, a restarted hakeeper could not find it again: do not leave it running.
            await self._terminate(child.pid, deadline=time.monotonic() + 5.0, term_wait=0.0)
            return result(OcfRc.ERR_PERM, f"cannot write {self.state_file}: {exc.strerror}")

        await asyncio.sleep(min(START_SETTLE, req.timeout / 4))
        reason = ""
        while True:
            code = self._reap()
            if code is not None:
                self._forget()
                return result(OcfRc.ERR_GENERIC, f"exited with code {code} during start")
            remaining = deadline - time.monotonic()
            reason = await self._health(req, remaining)
            if not reason:
                return result(OcfRc.SUCCESS)
            if deadline - time.monotonic() <= HEALTH_RETRY:
                break
            await asyncio.sleep(HEALTH_RETRY)
        # Never healthy in time: a failed start must leave nothing running behind.
        await self._terminate(child.pid, deadline=time.monotonic() + 5.0, term_wait=0.0)
        self._forget()
        return result(
            OcfRc.ERR_GENERIC, f"not healthy within {req.timeout:g}s: {reason}", timed_out=True
        )

    async def stop(self, req: OpRequest) -> OpResult:
        async with self._lock:
            return log_op(await self._stop(req), node=req.node, epoch=req.epoch)

    async def _stop(self, req: OpRequest) -> OpResult:
        started = time.monotonic()
        running = self._alive()
        if running is None:
            self._forget()
            return make_result("stop", OcfRc.SUCCESS, started=started, resource=self.instance)
        # SIGTERM gets at most half the bound: under a self-fence the bound is the lease's
        # margin (0.2 s on the fast profile), and the other half is what the SIGKILL needs
        # to land and the group to be reaped on a loaded machine before the lease can expire.
        term_wait = min(self.config.stop_timeout, req.timeout / 2)
        left = await self._terminate(
            running.pid, deadline=started + req.timeout, term_wait=term_wait
        )
        if left:
            return make_result(
                "stop",
                OcfRc.ERR_GENERIC,
                started=started,
                resource=self.instance,
                exit_reason=f"process group {running.pid} still has {left} after SIGKILL",
                timed_out=True,
            )
        self._forget()
        return make_result("stop", OcfRc.SUCCESS, started=started, resource=self.instance)

    async def _terminate(self, pgid: int, *, deadline: float, term_wait: float) -> list[int]:
        """SIGTERM the group, wait ``term_wait``, SIGKILL what is left; PIDs still alive.

        The SIGKILL is never skipped: with a short deadline (a self-fence bounded by the
        lease) it is sent at the escalation time or at the deadline, whichever comes first,
        and the polling wakes for both."""
        kill_group(pgid, signal.SIGTERM)
        escalate_at = min(time.monotonic() + term_wait, deadline)
        killed = False
        while True:
            self._reap()
            left = live_group_members(pgid)
            if not left:
                return []
            now = time.monotonic()
            if not killed and now >= escalate_at:
                kill_group(pgid, signal.SIGKILL)
                killed = True
                continue
            if now >= deadline:
                return left
            wake, step = (deadline, KILLED_POLL) if killed else (escalate_at, POLL)
            await asyncio.sleep(max(0.005, min(step, wake - now)))

    async def monitor(self, req: OpRequest, *, probe: bool = False) -> OpResult:
        async with self._lock:
            result = await self._monitor(
                req, "probe" if probe else "monitor", 0.0 if probe else req.interval
            )
            return log_op(result, node=req.node, epoch=req.epoch)

    async def _monitor(self, req: OpRequest, op: str, interval: float) -> OpResult:
        started = time.monotonic()
        code = self._reap()
        if self._alive() is None:
            reason = f"exited with code {code}" if code is not None else ""
            return make_result(
                op,
                OcfRc.NOT_RUNNING,
                started=started,
                resource=self.instance,
                interval=interval,
                exit_reason=reason,
                output_tail=self._log_tail() if reason else "",
            )
        reason = await self._health(req, req.timeout)
        rc = OcfRc.ERR_GENERIC if reason else OcfRc.SUCCESS
        return make_result(
            op, rc, started=started, resource=self.instance, interval=interval, exit_reason=reason
        )

    async def promote(self, req: OpRequest) -> OpResult:
        return unimplemented("promote", self.instance, "the process agent has no roles")

    async def demote(self, req: OpRequest) -> OpResult:
        return unimplemented("demote", self.instance, "the process agent has no roles")
