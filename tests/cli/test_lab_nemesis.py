"""``hakeeper lab nemesis`` refuses what it cannot run before it builds anything."""

from __future__ import annotations

import shlex

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
