"""The cluster secret of a lab: every lab makes its own, so no lab runs without one.

A lab's Raft members authenticate each other exactly as production nodes do (issue 15):
the secret lives in ``<lab dir>/secret``, mode 0600, written by `write_secret_file`.
"""

from __future__ import annotations

from pathlib import Path

from hakeeper.config.secret_file import read_secret_file, write_secret_file

SECRET_NAME = "secret"


def lab_secret_file(directory: Path) -> Path:
    """``<directory>/secret`` by absolute path, created (mode 0600) unless it is there.

    A lab restarted in the same directory keeps its secret, so members whose Raft log is
    still there rejoin with it; an existing file is read first, so one that others may
    read is refused here, with the fix, rather than by every member at start.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory.resolve() / SECRET_NAME
    if path.exists():
        read_secret_file(path)
    else:
        write_secret_file(path)
    return path
