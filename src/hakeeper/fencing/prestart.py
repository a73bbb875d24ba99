"""Fence agents started before they are needed (a device's ``prestart = true``).

A fence agent is a fresh process per request, and its start-up (an interpreter and its
imports: ~0.1 s for a Python agent) is outage when it begins after the node was found dead.
A prestarted agent has paid that already: it waits, blocked reading its stdin, and the fence
only writes its options and closes the pipe.

Why a waiting agent is harmless:

* A ClusterLabs agent reads every option from stdin before it acts, so one that waits has
  done nothing; it holds no secret either, since the options (passwords included) are written
  only when it is used.
* A waiting agent whose stdin ended would act on an empty request, so it runs under
  ``setpriv --pdeathsig KILL``: if the daemon dies, the kernel kills it. That alone is not
  enough: a dying process's files are closed before its children are signalled (``do_exit``
  runs ``exit_files`` before ``exit_notify``), so the agent could read end-of-input and act in
  between. A guard, ``tail --pid=DAEMON -f /dev/null``, holds a second write end of the
  agent's stdin and is not under the death signal: it lets go only once the daemon is gone
  (it looks every `GUARD_POLL` s), by when the agent is dead. It is started before the agent,
  so there is no moment when the daemon's end is the only one. (An agent that needs no option
  at all, one that fences a fixed machine by default, must not be prestarted; the config docs
  say so.)

`Standbys` holds the waiting agents, one per executable; its owner (the runner's
``keep_warm``) calls `Standbys.refresh` every `WARM_INTERVAL`, which replaces one that served a
request, died, lost its guard, or whose executable changed on disk (a package upgrade), and
`Standbys.close` when it ends, which kills them all. `Standbys.serve` gives one its request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import shutil
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: How often the waiting agents are looked at (and a used one replaced).
WARM_INTERVAL = 1.0
#: How long a killed agent may take to be reaped.
REAP_TIMEOUT = 5.0
#: How often a guard looks whether the daemon is still there (``tail -s``).
GUARD_POLL = 0.05
#: The largest request handed to a waiting agent: one write of at most this many bytes into
#: its empty pipe is whole and never blocks (POSIX ``PIPE_BUF``). A larger one (hundreds of
#: parameters) is run by an agent started for it, as without prestart.
REQUEST_LIMIT = select.PIPE_BUF

Process = asyncio.subprocess.Process
#: Starts a command with the given stdin (a file descriptor) and piped stdout and stderr.
Start = Callable[[tuple[str, ...], int], Awaitable[Process]]


def pdeathsig_prefix() -> tuple[str, ...] | None:
    """The command that makes the kernel kill an agent whose daemon died, or None."""
    setpriv = shutil.which("setpriv")
    return None if setpriv is None else (setpriv, "--pdeathsig", "KILL", "--")


def executable_version(path: Path) -> int | None:
    """What tells one build of an agent from the next (None: the file is gone)."""
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class _Standby:
    """One waiting agent, the write end of its stdin, and the guard holding a second one."""

    process: Process
    version: int
    stdin: int
    guard: Process

    def hand_over(self, request: bytes) -> Process:
        """Write the whole request (at most `REQUEST_LIMIT` bytes: `Standbys.serve`) and
        end the agent's input; it then acts, and is the caller's to wait for."""
        try:
            # Written before either end closes: the agent never sees an end without it. An
            # agent that died meanwhile (a broken pipe) is reported by its exit code.
            with contextlib.suppress(BrokenPipeError):
                os.write(self.stdin, request)
        finally:
            os.close(self.stdin)
            _kill(self.guard)  # the last other write end: the agent reads end-of-input now
        return self.process

    def discard(self) -> None:
        """Kill the agent, never give it end-of-input, then let its guard go."""
        _kill(self.process)
        _kill(self.guard)
        with contextlib.suppress(OSError):
            os.close(self.stdin)

    def fit(self, path: Path) -> bool:
        alive = self.process.returncode is None and self.guard.returncode is None
        return alive and executable_version(path) == self.version


class Standbys:
    """Waiting agents by executable; ``start`` spawns a command with the given stdin."""

    def __init__(self, start: Start) -> None:
        self._start = start
        prefix, tail = pdeathsig_prefix(), shutil.which("tail")
        #: The agent's ``setpriv`` prefix and the guard's ``tail``; None if the host lacks one.
        self._tools = None if prefix is None or tail is None else (prefix, tail)
        self._waiting: dict[Path, _Standby] = {}

    def serve(self, path: Path, request: bytes) -> Process | None:
        """The agent waiting for ``path``, given ``request`` and now the caller's to wait
        for; None when there is none fit, or the request is over `REQUEST_LIMIT` (the caller
        starts an agent for it, and the waiting one stays)."""
        if len(request) > REQUEST_LIMIT:
            return None
        waiting = self._waiting.pop(path, None)
        if waiting is None:
            return None
        if not waiting.fit(path):
            waiting.discard()
            return None
        return waiting.hand_over(request)

    @property
    def possible(self) -> bool:
        return self._tools is not None

    async def refresh(self, wanted: frozenset[Path]) -> None:
        """One agent waiting per path of ``wanted``, each fit to use; no other."""
        for path, waiting in list(self._waiting.items()):
            if path not in wanted or not waiting.fit(path):
                del self._waiting[path]
                await _reap(waiting)
        for path in wanted - self._waiting.keys():
            version = executable_version(path)
            if version is None or self._tools is None:
                continue  # a missing agent: the fence itself says so, with the fix
            standby = await self._prestart(path, version, *self._tools)
            self._waiting[path] = standby
            log.info(
                "event=fence_agent_prestarted agent=%s pid=%d guard=%d",
                path, standby.process.pid, standby.guard.pid,
            )  # fmt: skip

    async def close(self) -> None:
        waiting, self._waiting = list(self._waiting.values()), {}
        for item in waiting:
            await _reap(item)

    async def _prestart(
        self, path: Path, version: int, prefix: tuple[str, ...], tail: str
    ) -> _Standby:
        read, write = os.pipe()
        try:
            guard = await asyncio.create_subprocess_exec(
                tail, "-s", str(GUARD_POLL), f"--pid={os.getpid()}", "-f", "/dev/null",
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL, pass_fds=(write,), start_new_session=True,
            )  # fmt: skip
            try:
                process = await self._start((*prefix, str(path)), read)
            except BaseException:
                _kill(guard)
                raise
        except BaseException:
            os.close(write)
            raise
        finally:
            os.close(read)
        return _Standby(process, version, write, guard)


def _kill(process: Process) -> None:
    # Killed, never given end-of-file: an agent reading an empty request may act on defaults.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


async def _reap(standby: _Standby) -> None:
    standby.discard()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(REAP_TIMEOUT):
            await standby.process.wait()
            await standby.guard.wait()
