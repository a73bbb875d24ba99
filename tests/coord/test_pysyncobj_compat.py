"""Importing the embedded Raft backend leaves the process's socket functions intact."""

from __future__ import annotations

import socket
import subprocess
import sys


def test_importing_the_raft_backend_keeps_inet_ntop_working() -> None:
    # A fresh interpreter: PySyncObj's patch happens once, at its first import.
    code = (
        "import socket, hakeeper.coord.raft\n"
        "print(socket.inet_ntop(socket.AF_INET6, bytes(15) + b'\\x01'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "::1"
    assert socket.inet_ntop(socket.AF_INET, b"\x7f\x00\x00\x01") == "127.0.0.1"
