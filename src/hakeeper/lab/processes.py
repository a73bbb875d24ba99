"""Processes that a lab cluster starts on loopback: start, signal by PID, reap, read logs.

Only processes started here are ever signalled, always by their own PID.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

from hakeeper.errors import HakeeperError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host`` (bind to 0, read, release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ManagedProcess:
    """One child process with its log file; survives neither ``kill()`` nor ``close()``."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str] | None = None) -> None:
        if self.running:
            # A second Popen would drop the handle of the first: a process nobody owns or
            # stops any more (two experiments left three Raft members each running so).
            assert self._proc is not None
            raise HakeeperError(
                f"{self.name} is already running (pid {self._proc.pid}): kill() or wait() "
                "for it before starting it again"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self._proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status once it has exited (negative: the signal that ended it)."""
        return self._proc.poll() if self._proc is not None else None

    def signal(self, signum: int) -> None:
        if self.running:
            assert self._proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._proc.pid, signum)

    def wait(self, timeout: float) -> bool:
        """Wait for the process to exit; True if it did within ``timeout``."""
        if self._proc is None:
            return True
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL (a crash, no cleanup) and reap."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self.signal(signal.SIGCONT)  # a stopped process must be able to die
            self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
