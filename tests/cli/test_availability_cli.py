"""`hakeeper availability calc|report|simulate` as a user and a script call them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hakeeper.cli import availability
from hakeeper.cli.main import app

EXAMPLES = Path(__file__).parents[2] / "examples" / "availability"
EVENTS = str(EXAMPLES / "events.jsonl")
SERVICES = str(EXAMPLES / "services.toml")
runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables wide enough for every column: rich sizes its console once, when the module is
    imported, from the terminal or COLUMNS it finds then (a test process may have neither)."""
    monkeypatch.setattr(availability.console, "_width", 160)  # undone after the test


def run(*args: str) -> str:
    result = runner.invoke(app, ["availability", *args], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    return result.output


def test_calc_shows_availability_and_yearly_downtime() -> None:
    out = run("calc", "--mtbf", "2000h", "--mttr", "30m")
    assert "99.97501%" in out
    assert "2 h 11 min 27 s" in out


def test_calc_sla_budget_of_99_95_monthly() -> None:
    out = run("calc", "--mtbf", "2000h", "--mttr", "30m", "--sla", "99.95% monthly")
    assert "21 min 54 s" in out


def test_calc_json_gives_the_inverse_answers() -> None:
    out = run("calc", "--mtbf", "2000h", "--mttr", "30m", "--target", "99.99%", "--json")
    inverse = json.loads(out)["inverse"]
    assert inverse["mttr_needed"] == pytest.approx(2000 * 3600 * 1e-4 / 0.9999)
    assert inverse["smallest_n"] == 2


def test_calc_group_with_failover_in_json() -> None:
    out = run("calc", "--mtbf", "1000h", "--mttr", "10h", "--n", "2", "--failover", "1h", "--json")
    group = json.loads(out)["group"]
    assert 1 - group["availability"] == pytest.approx((10 / 1010) ** 2 + 1 / 1000)


def test_calc_topology_prints_the_tree() -> None:
    out = run("calc", "--topology", str(EXAMPLES / "topology.toml"))
    assert "shop (series)" in out
    assert "2 × lb-node" in out


def test_calc_without_figures_exits_2_with_a_hint() -> None:
    result = runner.invoke(app, ["availability", "calc", "--mtbf", "2000h"])
    assert result.exit_code == 2
    assert "give --mtbf and --mttr" in result.output


def test_calc_bad_unit_names_the_option() -> None:
    result = runner.invoke(app, ["availability", "calc", "--mtbf", "2000", "--mttr", "1h"])
    assert result.exit_code == 2
    assert "--mtbf" in result.output


def test_report_table_lists_service_and_budget() -> None:
    out = run("report", "--events", EVENTS, "--services", SERVICES, "--end", "2024-07-01T00:00:00Z")
    assert "service shop" in out
    assert "26.2%" in out


def test_report_json_has_the_known_service_downtime() -> None:
    out = run("report", "--events", EVENTS, "--services", SERVICES, "--end", "1719792000", "--json")
    (shop,) = json.loads(out)["services"]
    assert shop["downtime"] == pytest.approx(340.0)


def test_report_window_counts_back_from_the_end() -> None:
    out = run(
        "report",
        "--events",
        EVENTS,
        "--services",
        SERVICES,
        "--end",
        "2024-07-01T00:00:00Z",
        "--window",
        "7d",
        "--json",
    )
    (shop,) = json.loads(out)["services"]
    # Only the planned 3 s VIP move (day 27) falls in the last 7 days.
    assert shop["downtime"] == pytest.approx(3.0)


def test_report_writes_the_html_file(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    run("report", "--events", EVENTS, "--services", SERVICES, "--html", str(target))
    assert "<svg" in target.read_text()


def test_report_bad_event_line_names_file_and_line(tmp_path: Path) -> None:
    log = tmp_path / "bad.jsonl"
    log.write_text('{"kind": "node.joined", "ts": 1, "node": "a"}\n{"kind": "nope", "ts": 2}\n')
    result = runner.invoke(app, ["availability", "report", "--events", str(log)])
    assert result.exit_code == 2
    assert "bad.jsonl:2: unknown event kind" in result.output


def test_simulate_json_has_three_scenarios() -> None:
    out = run(
        "simulate", "--mtbf", "2000h", "--mttr", "4h", "--trials", "50", "--json", "--seed", "3"
    )
    assert [s["scenario"] for s in json.loads(out)] == [
        "as configured",
        "4 nodes (q=3)",
        "failover × 0.5",
    ]


def test_simulate_takes_measured_failover_times_from_the_log() -> None:
    out = run("simulate", "--events", EVENTS, "--trials", "20", "--no-what-if", "--json")
    (only,) = json.loads(out)
    assert only["model"]["failover"].startswith("measured (4 samples")


def test_simulate_table_names_the_scenarios() -> None:
    out = run("simulate", "--mtbf", "2000h", "--mttr", "4h", "--trials", "50", "--target", "99.99%")
    assert "as configured" in out
    assert "≤ 99.99%" in out


def test_report_shows_each_restore_drills_rto_and_rpo(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_text(
        EXAMPLES.joinpath("events.jsonl").read_text()
        + '{"kind":"drill.finished","ts":1719700000.0,"backup_id":"20240629T222640Z-0a1b2c3d",'
        '"ok":true,"rto":14.2,"rpo":3600.0,"reason":""}\n'
    )
    out = run("report", "--events", str(log), "--end", "2024-07-01T00:00:00Z")
    assert "restore drill 2024-06-29 22:26 of backup 20240629T222640Z-0a1b2c3d: passed" in out
    (drill,) = json.loads(
        run("report", "--events", str(log), "--end", "2024-07-01T00:00:00Z", "--json")
    )["drills"]
    assert (drill["rto"], drill["rpo"]) == (14.2, 3600.0)
