"""The memory bound holds for the whole process: a real store filled past ``--memory``."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hakeeper.lab.processes import free_port
from tests.sessions.servers import start_store

pytestmark = pytest.mark.slow

LIMIT = 64 << 20
BATCH = 2000


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def bare_interpreter_rss() -> int:
    """VmRSS of this Python doing nothing, as a number to report next to the bound."""
    out = subprocess.run(
        [sys.executable, "-c", "print(open('/proc/self/status').read())"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    for line in out.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def fill(address: str, total_bytes: int, value_size: int) -> None:
    """Pipelined noreply sets of distinct keys until ``total_bytes`` of values were sent,
    then one acknowledged set (every earlier one was applied before it)."""
    host, _, port = address.rpartition(":")
    value = b"v" * value_size
    count = total_bytes // value_size
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        for start in range(0, count, BATCH):
            sock.sendall(
                b"".join(
                    b"set k%d-%d 0 0 %d noreply\r\n%s\r\n" % (value_size, i, value_size, value)
                    for i in range(start, min(start + BATCH, count))
                )
            )
        sock.sendall(b"set last 0 0 1\r\nx\r\n")
        reader = sock.makefile("rb")
        assert reader.readline() == b"STORED\r\n"


@pytest.mark.parametrize("value_size", [100, 4000])
def test_resident_memory_stays_within_the_bound_after_filling_past_it(
    tmp_path: Path, value_size: int
) -> None:
    address = f"127.0.0.1:{free_port()}"
    proc = start_store(tmp_path, "store", address, extra=("--memory", "64m"))
    try:
        assert proc.pid is not None
        started = rss_bytes(proc.pid)
        # Twice the bound in values alone: the store evicts throughout the second half.
        fill(address, 2 * LIMIT, value_size)
        filled = rss_bytes(proc.pid)
        assert proc.running
    finally:
        proc.kill()
    bare = bare_interpreter_rss()
    print(
        f"value {value_size} B: RSS at start {started >> 20} MiB, filled {filled >> 20} MiB, "
        f"bare interpreter {bare >> 20} MiB, bound {(LIMIT * 3 // 2 + started) >> 20} MiB"
    )
    # The store's own modules (uvloop, hakeeper) count as the interpreter: RSS at start.
    assert filled <= LIMIT * 3 // 2 + started
