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
  ``setpriv --pdeathsig KILL``: if the daemon dies, the kernel kills it. (An agent that needs no
  option at all, one that fences a fixed machine by default, must not be prestarted; the
  config docs say so.)

`Standbys` holds the waiting agents, one per executable; its owner (the runner's
``keep_warm``) calls `Standbys.refresh` every `WARM_INTERVAL`, which replaces one that served a
request, died, or whose executable changed on disk (a package upgrade), and `Standbys.close`
when it ends, which kills them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
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

Process = asyncio.subprocess.Process
Start = Callable[[tuple[str, ...]], Awaitable[Process]]


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
class _Waiting:
    process: Process
    version: int


class Standbys:
    """Waiting agents by executable; ``start`` spawns a command with piped stdio."""

    def __init__(self, start: Start) -> None:
        self._start = start
        self._prefix = pdeathsig_prefix()
        self._waiting: dict[Path, _Waiting] = {}

    def take(self, path: Path) -> Process | None:
        """The agent waiting for ``path``, now the caller's; None when there is none fit."""
        waiting = self._waiting.pop(path, None)
        if waiting is None:
            return None
        if not self._fit(path, waiting):
            _kill(waiting.process)
            return None
        return waiting.process

    @property
    def possible(self) -> bool:
        return self._prefix is not None

    async def refresh(self, wanted: frozenset[Path]) -> None:
        """One agent waiting per path of ``wanted``, each fit to use; no other."""
        for path, waiting in list(self._waiting.items()):
            if path not in wanted or not self._fit(path, waiting):
                del self._waiting[path]
                await _reap(waiting.process)
        for path in wanted - self._waiting.keys():
            version = executable_version(path)
            if version is None or self._prefix is None:
                continue  # a missing agent: the fence itself says so, with the fix
            process = await self._start((*self._prefix, str(path)))
            self._waiting[path] = _Waiting(process, version)
            log.info("event=fence_agent_prestarted agent=%s pid=%d", path, process.pid)

    async def close(self) -> None:
        waiting, self._waiting = list(self._waiting.values()), {}
        for item in waiting:
            await _reap(item.process)

    @staticmethod
    def _fit(path: Path, waiting: _Waiting) -> bool:
        alive = waiting.process.returncode is None
        return alive and executable_version(path) == waiting.version


def _kill(process: Process) -> None:
    # Killed, never given end-of-file: an agent reading an empty request may act on defaults.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


async def _reap(process: Process) -> None:
    _kill(process)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(REAP_TIMEOUT):
            await process.wait()
