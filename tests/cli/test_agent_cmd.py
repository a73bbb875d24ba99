"""`hakeeper agent` refuses to start when its watchdog is required and missing."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from hakeeper.cli.main import app


def test_a_required_watchdog_that_is_missing_stops_the_agent_before_it_joins(
    tmp_path: Path,
) -> None:
    config = tmp_path / "cluster.toml"
    config.write_text(
        f"""
[cluster]
name = "wd"

[nodes.n1]
address = "127.0.0.1"

[fencing]
watchdog = "required"
watchdog_device = "{tmp_path / "watchdog"}"
"""
    )
    result = CliRunner().invoke(
        app, ["agent", "--config", str(config), "--node", "n1", "--state-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert f"watchdog {tmp_path / 'watchdog'} unusable" in result.output
