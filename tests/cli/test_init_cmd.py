"""`hakeeper init`: a starter cluster file that validates, a secret of mode 0600, never an
overwrite, and next steps that run as printed."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner, Result

from hakeeper.cli.main import app
from hakeeper.config import load
from hakeeper.config.secret_file import read_secret_file


def hakeeper(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hakeeper", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


def snapshot(directory: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file's bytes, mode and mtime: what "nothing changed" means."""
    return {
        p.name: (p.read_bytes(), p.stat().st_mode, p.stat().st_mtime_ns)
        for p in sorted(directory.iterdir())
    }


def test_init_writes_a_cluster_file_that_validates_and_names_the_secret(tmp_path: Path) -> None:
    result = hakeeper("init", str(tmp_path / "c"))

    assert result.returncode == 0, result.stderr
    cf = load(tmp_path / "c" / "cluster.toml")
    assert cf.coordination.backend == "raft"
    assert cf.coordination.secret_file == str(tmp_path / "c" / "secret")
    assert sorted(cf.nodes) == ["n1", "n2", "n3"]
    assert list(cf.resources) == ["vip"]
    # The fencing section is an example to fill in, commented out.
    text = (tmp_path / "c" / "cluster.toml").read_text()
    assert "# [fencing.devices.ipmi]" in text
    assert not cf.fencing.devices


def test_init_writes_a_random_secret_of_mode_0600(tmp_path: Path) -> None:
    assert hakeeper("init", str(tmp_path / "a")).returncode == 0
    assert hakeeper("init", str(tmp_path / "b")).returncode == 0

    for name in ("a", "b"):
        assert stat.S_IMODE(os.stat(tmp_path / name / "secret").st_mode) == 0o600
    first = read_secret_file(tmp_path / "a" / "secret")
    assert len(first.accepted) == 1
    assert first.current != read_secret_file(tmp_path / "b" / "secret").current


def test_init_with_no_directory_writes_into_the_current_one(tmp_path: Path) -> None:
    result = hakeeper("init", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert load(tmp_path / "cluster.toml").coordination.secret_file == str(tmp_path / "secret")


def test_a_second_init_refuses_and_changes_nothing(tmp_path: Path) -> None:
    assert hakeeper("init", str(tmp_path)).returncode == 0
    before = snapshot(tmp_path)

    again = hakeeper("init", str(tmp_path))

    assert again.returncode == 1
    assert "exist already; nothing was written" in again.stderr
    assert snapshot(tmp_path) == before


def test_init_beside_an_existing_secret_writes_no_cluster_file_either(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("an-old-secret-of-some-other-cluster\n")
    os.chmod(tmp_path / "secret", 0o600)
    before = snapshot(tmp_path)

    result = hakeeper("init", str(tmp_path))

    assert result.returncode == 1
    assert f"{tmp_path / 'secret'} exists already; nothing was written" in result.stderr
    assert snapshot(tmp_path) == before


def test_every_next_step_command_runs_as_printed(tmp_path: Path) -> None:
    # A space in the path: a command that runs as printed quotes it.
    directory = tmp_path / "my cluster"
    result = hakeeper("init", str(directory))
    assert result.returncode == 0, result.stderr
    commands = [
        line.strip() for line in result.stdout.splitlines() if line.strip().startswith("hakeeper ")
    ]
    assert len(commands) == 3, result.stdout

    # The console script next to this interpreter is the `hakeeper` an operator runs.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    for command in commands:
        ran = subprocess.run(
            ["/bin/sh", "-c", command],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=env,
            cwd=tmp_path,
        )
        assert ran.returncode == 0, f"{command}\n{ran.stdout}{ran.stderr}"


def in_process(*args: str) -> Result:
    """The same command, run in this process (no interpreter start-up: seconds here)."""
    return CliRunner().invoke(app, list(args))


def test_init_with_nodes_writes_their_files_and_each_nodes_commands(tmp_path: Path) -> None:
    nodes = ["--node", "a=10.0.0.1", "--node", "b=10.0.0.2", "--node", "c=10.0.0.3"]
    result = in_process("init", str(tmp_path / "d"), *nodes)

    assert result.exit_code == 0, result.output
    cf = load(tmp_path / "d" / "cluster.toml")
    assert {n: cf.nodes[n].address for n in cf.nodes} == {
        "a": "10.0.0.1", "b": "10.0.0.2", "c": "10.0.0.3",
    }  # fmt: skip
    # Where every node keeps it, not where init wrote it.
    assert cf.coordination.secret_file == "/etc/hakeeper/secret"
    assert (tmp_path / "d" / "nodes" / "b.env").read_text().endswith("HAKEEPER_NODE=b\n")
    commands = [line.strip() for line in result.output.splitlines() if "root@" in line]
    assert f"scp -p {tmp_path}/d/nodes/c.env root@10.0.0.3:/etc/hakeeper/node.env" in commands
    assert "ssh root@10.0.0.2 systemctl enable --now hakeeper.service" in commands
    # Every file a command copies exists, by the path printed.
    for line in commands:
        if line.startswith("scp"):
            for word in shlex.split(line)[2:-1]:
                assert Path(word).is_file(), word


def test_init_refuses_a_node_it_cannot_name_and_writes_nothing(tmp_path: Path) -> None:
    result = in_process("init", str(tmp_path / "d"), "--node", "a=10.0.0.1; rm -rf /")

    assert result.exit_code == 2
    assert "NAME=ADDRESS" in result.output
    assert not (tmp_path / "d").exists()


def test_install_unit_writes_the_unit_naming_this_hakeeper_once(tmp_path: Path) -> None:
    first = in_process("init", "--install-unit", "--unit-dir", str(tmp_path))
    again = in_process("init", "--install-unit", "--unit-dir", str(tmp_path))

    assert first.exit_code == 0, first.output
    unit = tmp_path / "hakeeper.service"
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    assert f"ExecStart={Path(sys.executable).parent / 'hakeeper'} agent" in unit.read_text()
    assert "unchanged" in again.output
    # Nothing else written: no cluster file in the working directory.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hakeeper.service"]
