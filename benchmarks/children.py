"""The processes a benchmark starts: each with its log in the run's directory, in its own
session, stopped by its PID at the end (SIGTERM, then SIGKILL); and the ports they listen on.
Shared by the benchmarks that run anchors (memcached, Redis, etcd) as plain processes."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

START_TIMEOUT = 120.0  # a server must listen within this (a loaded 2-core machine is slow)
STOP_TIMEOUT = 10.0


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_port(
    host: str, port: int, proc: subprocess.Popen[bytes], timeout: float = START_TIMEOUT
) -> None:
    """Until something listens on ``host:port``; fails at once if ``proc`` exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port}")


class Children:
    """Processes started here; stopped by PID (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()  # the child holds its own copy
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT)
        self.procs.clear()


@contextlib.contextmanager
def children(workdir: Path) -> Iterator[Children]:
    procs = Children(workdir)
    try:
        yield procs
    finally:
        procs.stop()
