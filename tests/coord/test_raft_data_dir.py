"""A raft member's data directory: private, format-marked, and never replayed in another format."""

from __future__ import annotations

from pathlib import Path

import pytest

from hakeeper.coord.raft_data_dir import FORMAT, MARK_NAME, open_data_dir
from hakeeper.errors import DataDirFormat


def test_a_new_directory_is_private_and_marked_with_this_format(tmp_path: Path) -> None:
    files = open_data_dir(tmp_path / "raft")
    assert (tmp_path / "raft").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "raft" / MARK_NAME).read_text() == f"hakeeper-raft {FORMAT}\n"
    assert files.journal == tmp_path / "raft" / "raft.journal"


def test_a_marked_directory_with_a_log_opens_again(tmp_path: Path) -> None:
    files = open_data_dir(tmp_path)
    files.journal.write_bytes(b"log")
    assert open_data_dir(tmp_path) == files


@pytest.mark.parametrize("log", ["raft.journal", "raft.journal.1", "raft.dump"])
def test_a_log_written_before_marks_is_refused_with_the_fix(tmp_path: Path, log: str) -> None:
    (tmp_path / log).write_bytes(b"old")
    with pytest.raises(DataDirFormat, match=r"no mark.*move each node's"):
        open_data_dir(tmp_path)
    assert not (tmp_path / MARK_NAME).exists()


def test_a_directory_of_another_format_is_refused(tmp_path: Path) -> None:
    (tmp_path / MARK_NAME).write_text("hakeeper-raft 3\n")
    with pytest.raises(DataDirFormat, match="hakeeper-raft 3"):
        open_data_dir(tmp_path)


def test_a_directory_of_a_newer_format_is_refused_with_upgrade_this_node(tmp_path: Path) -> None:
    (tmp_path / MARK_NAME).write_text(f"hakeeper-raft {FORMAT + 1}\n")
    with pytest.raises(DataDirFormat) as refused:
        open_data_dir(tmp_path)
    text = str(refused.value)
    assert f"format {FORMAT + 1}, written by a newer hakeeper" in text
    assert f"reads {FORMAT} only" in text
    assert "upgrade this node" in text
