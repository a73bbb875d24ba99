from pathlib import Path

import pytest

from hakeeper.errors import ConfigError
from hakeeper.lab.fence_agent import record_off
from hakeeper.lab.nemesis_history import (
    HISTORY_FILE,
    Fault,
    HolderSample,
    LeaderSample,
    Operation,
    RunInfo,
    read_history,
    read_run,
    write_history,
)

RUN = RunInfo(seed=7, duration=120.0, profile="fast", nodes=("n1", "n2", "n3"), started=5.0)


def test_a_history_reads_back_as_written_with_an_open_fault(tmp_path: Path) -> None:
    records = [
        RUN,
        Operation("sessions-1", "session-write", "k1", "v1", 1.0, 1.5, "ok"),
        Operation("sessions-1", "session-read", "k1", None, 2.0, 3.0, "unknown", "timed out"),
        Fault("crash", ("n1",), 3.0, float("inf"), group=1),
        HolderSample("vip", 4.0, ("n2",)),
        LeaderSample("n2", 4.5, None, 3),
    ]
    write_history(tmp_path / "h.jsonl", records)
    history = read_history(tmp_path / "h.jsonl")
    assert history.run == RUN
    assert list(history.operations) == records[1:3]
    assert history.faults == (records[3],)
    assert history.holders == (records[4],)
    assert history.leaders == (records[5],)


def test_a_run_reads_the_fences_its_lab_recorded(tmp_path: Path) -> None:
    write_history(tmp_path / HISTORY_FILE, [RUN])
    record_off(tmp_path, "n2", 12.5)
    record_off(tmp_path, "n1", 14.0)
    assert sorted(read_run(tmp_path).fenced) == [("n1", 14.0), ("n2", 12.5)]


def test_a_history_without_its_run_record_is_refused_with_the_fix(tmp_path: Path) -> None:
    write_history(tmp_path / "h.jsonl", [HolderSample("vip", 4.0, ())])
    with pytest.raises(ConfigError, match="starts with its run record"):
        read_history(tmp_path / "h.jsonl")


def test_a_line_that_is_not_a_record_names_its_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "h.jsonl").write_text('{"record": "run"}\n{"nope": 1}\n')
    with pytest.raises(ConfigError, match=r"h\.jsonl:1: bad RunInfo"):
        read_history(tmp_path / "h.jsonl")
