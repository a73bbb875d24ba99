"""`hakeeper lab nemesis-check RUN_DIR`: the report of a hand-made run directory, as people
and scripts read it, and its exit status."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hakeeper.cli import nemesis_report
from hakeeper.cli.main import app
from hakeeper.lab.nemesis_history import (
    EVENTS_FILE,
    HISTORY_FILE,
    HTML_FILE,
    SINGLETON_FILE,
    History,
    HolderSample,
    write_history,
)
from tests.lab.nemesis_histories import clean_history

EVENTS = Path(__file__).parents[2] / "examples" / "availability" / "events.jsonl"
runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """rich sizes its console when the module is imported; a test process may have no
    terminal, so give every column room (undone after the test)."""
    monkeypatch.setattr(nemesis_report.console, "_width", 200)


def save_run(run_dir: Path, history: History, *, events: bool = True) -> Path:
    run_dir.mkdir(exist_ok=True)
    write_history(
        run_dir / HISTORY_FILE,
        [
            history.run,
            *history.operations,
            *history.faults,
            *history.holders,
            *history.leaders,
        ],
    )
    (run_dir / SINGLETON_FILE).write_text(
        "".join(
            f"{r.what} {r.name} {r.node} {r.at} {r.pid} {r.epoch}\n"
            for r in history.singleton_records
        )
    )
    if events:
        shutil.copy(EVENTS, run_dir / EVENTS_FILE)
    return run_dir


def check(run_dir: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["lab", "nemesis-check", str(run_dir), *args])
    return result.exit_code, result.output


def test_a_clean_run_reports_every_invariant_held_and_exits_0(tmp_path: Path) -> None:
    code, out = check(save_run(tmp_path / "run", clean_history()))
    assert code == 0, out
    assert "seed 7" in out
    assert "every invariant held" in out
    assert "crash" in out
    assert "isolate" in out
    assert "vip-single-holder" in out
    assert "no-election-on-heal" in out
    assert (tmp_path / "run" / HTML_FILE).read_text().startswith("<!DOCTYPE html>")


def test_the_json_document_carries_invariants_outages_and_availability(tmp_path: Path) -> None:
    code, out = check(save_run(tmp_path / "run", clean_history()), "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["ok"] is True
    assert {i["name"]: i["violations"] for i in doc["invariants"]} == {
        "vip-single-holder": 0,
        "singleton-single-holder": 0,
        "session-no-lost-write": 0,
        "session-linearizable": 0,
        "recovery-within-bound": 0,
        "no-election-on-heal": 0,
    }
    crash = doc["faults_by_kind"][0]
    assert crash["kind"] == "crash"
    assert crash["count"] == 1
    assert crash["outages"]["http-get"]["max"] == pytest.approx(2.5)
    assert [f["elections"] for f in doc["faults"]] == [0, 0]
    assert doc["availability"]["services"] or doc["availability"]["resources"]


def test_a_violation_is_shown_with_its_example_and_exits_1(tmp_path: Path) -> None:
    history = clean_history()
    history = dataclasses.replace(
        history, holders=(*history.holders, HolderSample("vip", 20.0, ("n1", "n2")))
    )
    code, out = check(save_run(tmp_path / "run", history))
    assert code == 1
    assert "FAILED: vip-single-holder" in out
    assert "vip held by n1, n2 at 20.000" in out


def test_a_run_without_its_event_log_is_still_checked_and_says_so(tmp_path: Path) -> None:
    code, out = check(save_run(tmp_path / "run", clean_history(), events=False), "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["availability"] is None
    assert "no event log at" in doc["availability_note"]


def test_a_broken_event_log_is_named_and_the_invariants_still_judged(tmp_path: Path) -> None:
    run_dir = save_run(tmp_path / "run", clean_history())
    (run_dir / EVENTS_FILE).write_text("{not json\n")
    code, out = check(run_dir, "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["availability"] is None
    assert f"{EVENTS_FILE}:1" in doc["availability_note"]
    assert doc["ok"] is True


def test_a_directory_without_a_history_exits_2_naming_the_file(tmp_path: Path) -> None:
    code, out = check(tmp_path)
    assert code == 2
    assert HISTORY_FILE in out
