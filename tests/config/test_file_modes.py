"""Private trees: made 0700, tightened when looser, walked without following symlinks."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from hakeeper.config.file_modes import open_entries, open_private, private_dir


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_a_new_private_dir_is_0700(tmp_path: Path) -> None:
    private_dir(tmp_path / "state" / "n1")
    assert mode(tmp_path / "state" / "n1") == 0o700


def test_a_loose_dir_and_its_files_are_tightened_and_reported(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "raft").mkdir(parents=True)
    journal = state / "raft" / "raft.journal"
    journal.write_text("x")
    state.chmod(0o755)
    (state / "raft").chmod(0o755)
    journal.chmod(0o644)
    tightened = private_dir(state, owned=("raft",))
    assert {e.path for e in tightened} == {state, state / "raft", journal}
    assert (mode(state), mode(state / "raft"), mode(journal)) == (0o700, 0o700, 0o600)
    assert open_entries(state) == []


def test_a_symlink_below_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("x")
    outside.chmod(0o644)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "link").symlink_to(outside)
    private_dir(state, owned=("link",))
    assert mode(outside) == 0o644


def test_open_private_creates_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        os.close(open_private(tmp_path / "log", os.O_WRONLY))
    finally:
        os.umask(old)
    assert mode(tmp_path / "log") == 0o600


def test_what_the_caller_does_not_own_is_left_alone(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    neighbour = state / "someone-elses"
    neighbour.write_text("x")
    neighbour.chmod(0o644)
    private_dir(state, owned=("raft",))
    assert (mode(state), mode(neighbour)) == (0o700, 0o644)
