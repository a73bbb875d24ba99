"""Processes a lab starts: each one owned by one handle."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hakeeper.errors import HakeeperError
from hakeeper.lab.processes import ManagedProcess


def test_a_running_process_is_not_started_twice(tmp_path: Path) -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    proc = ManagedProcess("sleeper", sleeper, tmp_path / "sleeper.log")
    proc.start()
    try:
        first = proc.pid
        with pytest.raises(HakeeperError, match="already running"):
            proc.start()
        assert proc.pid == first
    finally:
        proc.kill()
    proc.start()  # once it has exited, it may start again
    proc.kill()
