"""`hakeeper demo` runs from start to finish as a new user would run it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_coord_demo_survives_the_leader_kill_without_losing_a_write() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hakeeper", "demo", "coord", "--profile", "fast"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "none lost" in result.stdout
    assert "lease renewed across the leader change: True" in result.stdout


@pytest.mark.slow
def test_cluster_demo_tour_fails_over_and_back_then_stops_everything() -> None:
    # COLUMNS: rich wraps to the terminal width; a wide one keeps each checked line whole.
    result = subprocess.run(
        [sys.executable, "-m", "hakeeper", "demo", "--no-watch"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "the cluster must fence first" in out
    assert "ran fence_hakeeper_lab off for n1" in out
    assert "failover: singleton now on n" in out
    assert "failback: singleton back on n1" in out
    assert "demo stopped" in out
