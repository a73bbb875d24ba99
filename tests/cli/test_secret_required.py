"""The cluster secret is required: without a usable secret file neither the node daemon
nor a command that opens the coordinator starts, and each says how to fix it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from hakeeper.cli.main import app
from hakeeper.config.secret_file import write_secret_file


def run_agent_process(config: Path, state_dir: Path) -> subprocess.CompletedProcess[str]:
    """``hakeeper agent`` as an operator starts it: its own process, its exit status."""
    return subprocess.run(
        [sys.executable, "-m", "hakeeper", "agent", "--config", str(config), "--node", "n1",
         "--state-dir", str(state_dir)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def one_node_cluster(tmp_path: Path, secret: Path) -> Path:
    config = tmp_path / "cluster.toml"
    config.write_text(
        f'[cluster]\nname = "s"\n[coordination]\nsecret_file = "{secret}"\n'
        '[nodes.n1]\naddress = "127.0.0.1"\n'
    )
    return config


def test_an_agent_without_its_secret_file_refuses_to_start_and_says_how_to_fix_it(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "secret"
    result = run_agent_process(one_node_cluster(tmp_path, secret), tmp_path / "state")

    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{secret}: no cluster secret there" in result.stderr
    assert "hakeeper init" in result.stderr
    assert not (tmp_path / "state").exists(), "the agent started before it checked its secret"


def test_an_agent_whose_secret_file_others_can_read_refuses_to_start_and_says_how_to_fix_it(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "secret"
    write_secret_file(secret)
    os.chmod(secret, 0o644)
    result = run_agent_process(one_node_cluster(tmp_path, secret), tmp_path / "state")

    assert result.returncode == 2, result.stdout + result.stderr
    assert "mode 0644 lets group or others read it" in result.stderr
    assert f"chmod 600 {secret}" in result.stderr
    assert not (tmp_path / "state").exists(), "the agent started before it checked its secret"


def test_a_cli_command_without_the_cluster_secret_refuses_to_connect_and_says_how_to_fix_it(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "secret"
    config = one_node_cluster(tmp_path, secret)

    result = CliRunner().invoke(app, ["status", "--config", str(config)])

    assert result.exit_code == 2
    assert f"{secret}: no cluster secret there" in result.output
    assert "hakeeper init" in result.output
