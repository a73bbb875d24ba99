"""Every command the CLI suggests runs as printed: each test takes a hint from real output
and runs exactly that line (through the same CLI app, on the same fake engine)."""

from __future__ import annotations

import asyncio
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hakeeper.api import hints
from hakeeper.cli.main import app
from hakeeper.model.cluster import ClusterSpec
from hakeeper.runtime.store import ClusterStore
from tests.cli.conftest import KEYS, NOW, online
from tests.fakes import LocalCoordinator

runner = CliRunner()


def hint_after(label: str, output: str) -> list[str]:
    """The words of the command printed after ``label``, as a shell would split them."""
    match = re.search(rf"{re.escape(label)}\s*(hakeeper .*)$", output, re.MULTILINE)
    assert match, f"no hint after {label!r} in:\n{output}"
    words = shlex.split(match.group(1))
    assert words[0] == "hakeeper"
    return words[1:]


def run(words: list[str]) -> str:
    result = runner.invoke(app, words)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_undo_of_a_move_runs_as_printed(
    use_local: None, coord: LocalCoordinator, store: ClusterStore, spec: ClusterSpec,
    config_file: Path,
) -> None:  # fmt: skip
    asyncio.run(online(coord, "n1", "n2", "n3"))
    printed = run(["resource", "move", "vip", "n2", "--config", str(config_file)])
    run(hint_after("undo with:", printed))
    assert asyncio.run(store.observe(spec, NOW)).state.constraints == ()


def test_the_undo_of_a_stop_runs_as_printed(
    use_local: None, coord: LocalCoordinator, store: ClusterStore, config_file: Path
) -> None:
    printed = run(["resource", "stop", "web-clone", "--config", str(config_file)])
    run(hint_after("undo with:", printed))
    assert asyncio.run(coord.get(KEYS.target_role("web-clone"))) is None


def test_the_manual_fence_hint_without_devices_runs_as_printed(
    use_local: None, coord: LocalCoordinator, config_file: Path
) -> None:
    result = runner.invoke(app, ["fence", "n3", "--config", str(config_file)])
    assert result.exit_code == 2
    printed = run(hint_after("node off by hand and run:", result.output))
    assert "n3" in printed


def test_a_hint_names_the_config_only_when_a_bare_command_would_miss_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "my cluster.toml"
    monkeypatch.delenv("HAKEEPER_CONFIG", raising=False)
    hints.use_config(config)
    assert hints.hakeeper("status") == f"hakeeper status --config '{config}'"
    monkeypatch.setenv("HAKEEPER_CONFIG", str(config))
    hints.use_config(config)
    assert hints.hakeeper("status") == "hakeeper status"
    hints.use_config(hints.DEFAULT_CONFIG)
