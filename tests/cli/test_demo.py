"""`hakeeper demo` runs from start to finish as a new user would run it."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_survives_the_leader_kill_without_losing_a_write() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hakeeper", "demo", "--profile", "fast"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "none lost" in result.stdout
    assert "lease renewed across the leader change: True" in result.stdout
