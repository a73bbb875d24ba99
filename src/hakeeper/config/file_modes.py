"""Files only their owner may read: the agent's state dir, its journal, logs and copies.

The state dir holds the Raft journal and dump (the whole key space, fence parameters
included), the last good config and the resources' logs. The agent runs with umask 077 and
makes its directories 0700; a state dir left looser by an older version or by hand is
tightened at start, with what the agent keeps in it (with a log line), and ``hakeeper
check`` names anything in it that others may read, with the command that fixes it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PRIVATE_UMASK = 0o077
#: How many entries of a state dir are looked at (a bound on a walk of a tree others may fill).
WALK_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class OpenFile:
    """Something under a private tree that group or others may read, write or enter."""

    path: Path
    mode: int
    is_dir: bool

    def describe(self) -> str:
        kind = "directory" if self.is_dir else "file"
        return f"{kind} {self.path} has mode {self.mode:04o}: group or others can reach it"


def open_entries(root: Path, limit: int = WALK_LIMIT) -> list[OpenFile]:
    """``root`` and what lies below it (symlinks not followed) that group or others may
    reach, at most ``limit`` entries looked at."""
    found: list[OpenFile] = []
    stack = [root]
    seen = 0
    while stack and seen < limit:
        path = stack.pop()
        seen += 1
        try:
            st = path.lstat()
        except OSError:
            continue
        if stat.S_ISLNK(st.st_mode):
            continue
        is_dir = stat.S_ISDIR(st.st_mode)
        if st.st_mode & 0o077:
            found.append(OpenFile(path, stat.S_IMODE(st.st_mode), is_dir))
        if is_dir:
            try:
                stack.extend(sorted(path.iterdir(), reverse=True))
            except OSError:
                continue
    return found


def private_dir(path: Path, owned: Iterable[str] = ()) -> list[OpenFile]:
    """Make ``path`` (and parents) a 0700 directory; tighten it, and everything in the
    subtrees named in ``owned`` (what the caller itself keeps there), when group or others
    could reach them. Other entries are left as they are: the directory's own mode already
    shuts others out, and a state dir pointed at a shared place must not have its
    neighbours' modes changed. Returns what was tightened, for the caller to log."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    loose = [e for e in open_entries(path, limit=1) if e.path == path]
    for name in owned:
        loose += open_entries(path / name)
    for entry in loose:
        try:
            os.chmod(entry.path, entry.mode & ~0o077)
        except OSError:
            continue
    return loose


def open_private(path: Path, flags: int) -> int:
    """``os.open`` that creates the file 0600 whatever the umask; an existing file keeps
    its mode (private_dir tightened it)."""
    return os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, 0o600)
