"""Run one agent action as a child process: own process group, deadline, bounded output.

Shared by the OCF, LSB and systemd agents and by the ``process`` agent's health command.
On timeout the whole process group gets SIGKILL (what Pacemaker's executor does), so an
agent's helpers die with it. After a normal exit the group is left alone: an agent's start
may legitimately leave a daemon behind in that group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

EXIT_REASON_PREFIX = "ocf-exit-reason:"
# Enough to keep an agent's last complaints; a chatty agent must not grow our memory.
OUTPUT_LIMIT = 16 * 1024
TAIL_LINES = 20
# After the agent exits, a daemon it left behind may still hold our pipes open; read what is
# already there for at most this long rather than wait for an EOF that may never come.
DRAIN_AFTER_EXIT = 1.0
REAP_DEADLINE = 5.0
EXIT_REASON_MAX = 256
# The agent itself runs with umask 077 (its state is its own); the services it starts get
# the usual 022, as systemd gives its services, so their files stay as they always were.
RESOURCE_UMASK = 0o022


@dataclass(frozen=True, slots=True)
class Completed:
    """What a finished (or killed) child left: rc, output tails, timing."""

    rc: int
    stdout: str
    stderr: str
    duration: float
    timed_out: bool
    pgid: int

    @property
    def exit_reason(self) -> str:
        return parse_exit_reason(self.stderr)

    def output_tail(self, lines: int = TAIL_LINES) -> str:
        """The last ``lines`` lines of stdout and stderr (in that order), reasons removed."""
        kept = [
            line
            for line in (self.stdout + "\n" + self.stderr).splitlines()
            if line.strip() and not line.startswith(EXIT_REASON_PREFIX)
        ]
        return "\n".join(kept[-lines:])


def parse_exit_reason(stderr: str) -> str:
    """The text after the first ``ocf-exit-reason:`` on stderr, to the end of that line.

    Pacemaker's rule (``PCMK_OCF_REASON_PREFIX``): the first occurrence wins; the reason is
    one line, stripped and bounded.
    """
    start = stderr.find(EXIT_REASON_PREFIX)
    if start < 0:
        return ""
    text = stderr[start + len(EXIT_REASON_PREFIX) :].split("\n", 1)[0].strip()
    return text[:EXIT_REASON_MAX]


class _Tail:
    """Keeps the first and last bytes of a stream (exit reasons are usually near the end)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = False

    def feed(self, chunk: bytes) -> None:
        if len(self.head) < self.limit // 4:
            room = self.limit // 4 - len(self.head)
            self.head += chunk[:room]
            chunk = chunk[room:]
        self.tail += chunk
        if len(self.tail) > self.limit:
            del self.tail[: len(self.tail) - self.limit]
            self.dropped = True

    def text(self) -> str:
        joiner = b"\n[...]\n" if self.dropped else b""
        return (bytes(self.head) + joiner + bytes(self.tail)).decode("utf-8", "replace")


async def _read_end(fd: int) -> tuple[asyncio.StreamReader, asyncio.ReadTransport]:
    """An asyncio reader of our end of a pipe; closing the transport closes the fd."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    return reader, transport


async def _pump(stream: asyncio.StreamReader | None, sink: _Tail) -> None:
    if stream is None:
        return
    while chunk := await stream.read(4096):
        sink.feed(chunk)


def kill_group(pgid: int, signum: int = signal.SIGKILL) -> None:
    """Signal a process group we created; a group already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def live_group_members(pgid: int) -> list[int]:
    """PIDs in process group ``pgid`` that are not zombies (Linux ``/proc``).

    Zombies are skipped: an orphan reparented to a PID 1 that does not reap (containers)
    stays a zombie forever but runs nothing.
    """
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            members.append(int(entry.name))
    return members


async def run_action(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout: float,
    cwd: Path | None = None,
    limit: int = OUTPUT_LIMIT,
) -> Completed:
    """Run ``argv`` in a new session with stdin from /dev/null; never wait past ``timeout``.

    Raises OSError only when the program cannot be started at all (missing, not executable);
    callers turn that into the matching OCF code.
    """
    started = time.monotonic()
    # Pipes of our own, not asyncio's: asyncio's wait() also waits for its pipes to close,
    # and a daemon an agent starts (a postmaster that pg_ctl left on the agent's stdout)
    # would hold them open long after the agent exited. The action ends when the agent does.
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out_w,
            stderr=err_w,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            umask=RESOURCE_UMASK,
        )
    except BaseException:
        for fd in (out_r, err_r):
            os.close(fd)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    pgid = proc.pid  # start_new_session: the child leads its own session and group
    out, err = _Tail(limit), _Tail(limit)
    readers = [await _read_end(out_r), await _read_end(err_r)]
    pumps = [
        asyncio.create_task(_pump(readers[0][0], out)),
        asyncio.create_task(_pump(readers[1][0], err)),
    ]
    timed_out = False
    try:
        try:
            async with asyncio.timeout(timeout):
                await proc.wait()
        except TimeoutError:
            timed_out = True
            kill_group(pgid)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(REAP_DEADLINE):
                    await proc.wait()
        await asyncio.wait(pumps, timeout=DRAIN_AFTER_EXIT)
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        for _, transport in readers:
            transport.close()
        if proc.returncode is None:  # cancelled from outside: leave nothing running
            kill_group(pgid)
            with contextlib.suppress(TimeoutError, ProcessLookupError):
                async with asyncio.timeout(REAP_DEADLINE):
                    await asyncio.shield(proc.wait())
    rc = proc.returncode if proc.returncode is not None else -signal.SIGKILL
    # A shell's "killed by signal n" arrives as -n; report it the way a shell would (128+n).
    if rc < 0:
        rc = 128 - rc
    return Completed(
        rc=rc,
        stdout=out.text(),
        stderr=err.text(),
        duration=time.monotonic() - started,
        timed_out=timed_out,
        pgid=pgid,
    )
