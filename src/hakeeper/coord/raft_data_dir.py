"""A raft member's data directory: private, and marked with the format of what it holds.

PySyncObj numbers replicated methods by their sorted names and pickles its consumers into
snapshots, so a journal or snapshot written by another layout of the state machines would
replay as the wrong commands. The directory therefore carries a format mark, written before
the first journal entry; a directory that holds a journal or snapshot under another mark, or
under none (written before marks existed), is refused and never replayed. The format's
version lives with every other format's in `hakeeper.model.wire_version`; a mark of a newer
format (a node downgraded, or a data directory copied from an upgraded one) is refused with
"upgrade this node".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hakeeper.errors import DataDirFormat, UnreadableFormat
from hakeeper.model.wire_version import SUPPORTED, Format, check_readable

#: 2: the key-value state machine beside the member record (membership changes). Format 1
#: (one state machine, no mark) is what every earlier version wrote.
FORMAT = SUPPORTED[Format.RAFT_DATA_DIR].newest
MARK_NAME = "format"
_MARK = f"hakeeper-raft {FORMAT}\n"


@dataclass(frozen=True, slots=True)
class RaftFiles:
    journal: Path
    dump: Path


def open_data_dir(path: Path) -> RaftFiles:
    """The journal and snapshot paths in ``path``, made private and checked for format.

    DataDirFormat when the directory holds a log of another format."""
    # The journal and snapshot hold the whole key space (fence passwords among it), and
    # PySyncObj writes them with the process umask: the directory keeps them private.
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    files = RaftFiles(path / "raft.journal", path / "raft.dump")
    mark = path / MARK_NAME
    found = mark.read_text(encoding="utf-8", errors="replace") if mark.exists() else None
    if found == _MARK:
        return files
    holds_log = any(p.name.startswith(("raft.journal", "raft.dump")) for p in path.iterdir())
    _refuse_newer(path, found)
    if found is not None or holds_log:
        written = (found or "").strip() or "hakeeper-raft 1 (no mark)"
        raise DataDirFormat(
            f"raft data directory {path} holds a log in format {written!r}; this version "
            f"reads format {FORMAT} only and will not replay it. Fix: run the version that "
            "wrote it, or start the cluster's coordination state afresh — stop every node, "
            f"move each node's {path.name} directory aside and start them again (runtime "
            "flags, fail counts and the event log are not carried over; the cluster file is)"
        )
    mark.write_text(_MARK, encoding="utf-8")
    mark.chmod(0o600)
    return files


def _refuse_newer(path: Path, mark: str | None) -> None:
    """DataDirFormat naming both versions when ``mark`` is of a newer format than this
    release reads (an older one gets the move-aside advice of `open_data_dir`)."""
    mark = (mark or "").strip()
    words = mark.split()
    if len(words) != 2 or words[0] != "hakeeper-raft" or not words[1].isdigit():
        return
    found = int(words[1])
    if found <= FORMAT:
        return
    try:
        check_readable(Format.RAFT_DATA_DIR, found, f"raft data directory {path} ({mark!r})")
    except UnreadableFormat as exc:
        raise DataDirFormat(str(exc)) from None
