"""Run one alert agent, as Pacemaker does: the executable with no arguments, the alert in its
environment (`hakeeper.runtime.alert_env`), a timeout.

The agent runs in its own session from ``/``, with stdin and stdout closed; its stderr is
kept up to `STDERR_LIMIT` bytes for the failure's reason and the rest is read and dropped, so
an agent that writes without end cannot fill a pipe and hang, nor fill memory. On timeout
its whole process group is killed (its children too: a sendmail it started, say).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

STDERR_LIMIT = 4096
#: After the kill, how long to wait for the group's pipe to close before giving up on it.
REAP_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one delivery went; ``reason`` says why it failed (empty when it did not)."""

    ok: bool
    attempts: int = 1
    reason: str = ""


async def run_agent(path: str, env: Mapping[str, str], timeout: float) -> Outcome:
    """Run the agent at ``path`` once; ok when it exits 0 within ``timeout`` seconds."""
    try:
        proc = await asyncio.create_subprocess_exec(
            path,
            env=dict(env),
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        return Outcome(False, reason=f"{path}: cannot run ({exc.strerror})")
    assert proc.stderr is not None
    try:
        async with asyncio.timeout(timeout):
            stderr = await _bounded(proc.stderr)
            rc = await proc.wait()
    except TimeoutError:
        _kill_group(proc.pid)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REAP_TIMEOUT):
                await proc.wait()
        return Outcome(False, reason=f"{path}: timed out after {timeout:g}s (killed)")
    except asyncio.CancelledError:
        _kill_group(proc.pid)
        raise
    if rc != 0:
        last = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        detail = "".join(c if c.isprintable() else " " for c in last[0][:200])
        return Outcome(False, reason=f"{path}: exit {rc}" + (f": {detail}" if detail else ""))
    return Outcome(True)


async def _bounded(stream: asyncio.StreamReader) -> bytes:
    kept = bytearray()
    while chunk := await stream.read(65536):
        if len(kept) < STDERR_LIMIT:
            kept += chunk[: STDERR_LIMIT - len(kept)]
    return bytes(kept)


def _kill_group(pid: int) -> None:
    # Our own child leads the group (start_new_session): killing it by its id is safe.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
