"""``hakeeper lab nemesis`` refuses what it cannot run before it builds anything."""

from __future__ import annotations

import os
import shlex
import signal
import time
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from hakeeper.cli import lab_nemesis
from hakeeper.cli.main import app


def test_without_root_it_says_so_and_prints_a_command_that_runs_as_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lab_nemesis.os, "geteuid", lambda: 1000)

    result = CliRunner().invoke(app, ["lab", "nemesis", "--seed", "7", "--duration", "2m"])

    assert result.exit_code == 2
    assert "needs root" in result.output
    hint = result.output.split("run it as root: ")[1].split("\n")[0]
    assert shlex.split(hint) == ["sudo", "hakeeper", "lab", "nemesis", "--seed", "7",
                                 "--duration", "2m"]  # fmt: skip


def test_a_bad_duration_is_refused_naming_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lab_nemesis.os, "geteuid", lambda: 0)
    built: list[object] = []
    monkeypatch.setattr(lab_nemesis, "build_stack", lambda *a, **k: built.append(a))

    result = CliRunner().invoke(app, ["lab", "nemesis", "--seed", "7", "--duration", "soon"])

    assert result.exit_code == 2
    assert "--duration" in result.output
    assert built == []


def test_sigterm_ends_the_run_with_the_lab_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lab_nemesis.os, "geteuid", lambda: 0)
    removed: list[bool] = []

    class Lab:
        layout = SimpleNamespace(prefix="hktest-")

        def down(self) -> None:
            removed.append(True)

    def terminated_mid_run(*args: object, **kwargs: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
        raise AssertionError("SIGTERM did not end the run")

    monkeypatch.setattr(lab_nemesis, "build_stack", lambda *a, **k: Lab())
    monkeypatch.setattr(lab_nemesis, "run_nemesis", terminated_mid_run)
    before = signal.getsignal(signal.SIGTERM)

    result = CliRunner().invoke(
        app, ["lab", "nemesis", "--seed", "7", "--duration", "2m", "--dir", "/nonexistent/x"]
    )

    assert removed == [True]
    assert result.exit_code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before
