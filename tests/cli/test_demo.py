"""`hakeeper demo` runs from start to finish as a new user would run it."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_binary


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


@contextlib.contextmanager
def sigint_as_at_a_terminal() -> Iterator[None]:
    """Children started here get SIGINT's default action, as a command run at a terminal has.

    A job a non-interactive shell starts with ``&`` (a CI runner's, ``nohup ... &``) ignores
    SIGINT, and the ignoring is inherited through exec: the watch would ignore the test's
    Ctrl-C, rightly, and never end. A handled signal is reset to its default by exec."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _hints(log: Path, deadline: float) -> list[str]:
    """The commands the live demo suggests, once it has printed them."""
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        if "hakeeper demo down" in text:
            block = text.split("try, from another terminal:", 1)[1]
            lines = [line.split("#", 1)[0].strip() for line in block.splitlines()]
            return [line for line in lines[: lines.index("hakeeper demo down") + 1] if line]
        time.sleep(0.5)
    raise AssertionError(f"the demo printed no hints in time:\n{log.read_text()}")


@pytest.mark.slow
def test_every_command_the_live_demo_suggests_runs_as_printed(tmp_path: Path) -> None:
    require_binary("curl")
    # A demo directory of its own (demo_dir honours XDG_RUNTIME_DIR), a wide terminal.
    env = {**os.environ, "COLUMNS": "200", "XDG_RUNTIME_DIR": str(tmp_path)}
    log = tmp_path / "demo.out"
    with log.open("w") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "hakeeper", "demo"], stdout=out, stderr=subprocess.STDOUT,
            env=env, start_new_session=True,
        )  # fmt: skip
    try:
        hints = _hints(log, time.monotonic() + 180)
        assert [h.split()[0] for h in hints] == ["curl", *["hakeeper"] * 5]
        for hint in hints:
            words = shlex.split(hint)
            argv = words if words[0] == "curl" else [sys.executable, "-m", "hakeeper", *words[1:]]
            if "--watch" in words:
                with sigint_as_at_a_terminal():
                    watching = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env, text=True)
                # Rich draws a watch to a pipe only when it stops: give it time to start (an
                # import takes seconds on a loaded machine), then Ctrl-C, then read its screen.
                try:
                    time.sleep(10.0)
                    assert watching.poll() is None, f"{hint} stopped at once"
                    watching.send_signal(signal.SIGINT)
                    shown, _ = watching.communicate(timeout=30)
                finally:
                    if watching.poll() is None:
                        watching.kill()
                        watching.wait(timeout=30)
                assert "n1" in shown, hint
                continue
            done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
            assert done.returncode == 0, f"{hint}: {done.stdout}{done.stderr}"
        assert up.wait(timeout=60) == 0  # `hakeeper demo down` ended it
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait(timeout=30)
        # The demo's node daemons run in sessions of their own: after a failure above they
        # would outlive the test, so stop them as a user would (their PIDs are in demo_dir).
        subprocess.run(
            [sys.executable, "-m", "hakeeper", "demo", "down"],
            capture_output=True, env=env, timeout=120, check=False,
        )  # fmt: skip
