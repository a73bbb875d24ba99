"""The wheel installs into a fresh virtual environment and runs.

Built from a copy of the source (``pip wheel --no-deps``, offline: the build requirements
come from the configured local wheel store), installed with ``--no-deps --no-index`` into a
new venv made without pip. Its dependencies are the ones this test's own venv resolved,
visible through a ``.pth`` line: the point is hakeeper's wheel (its modules, entry points and
package data), not a second download of aiohttp. The commands run are the installed
``hakeeper`` script, from the fresh venv's ``bin``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLE = """\
[cluster]
name = "wheel"

[coordination]
secret_file = "/etc/hakeeper/secret"

[nodes.n1]
address = "10.0.0.1"

[resources.vip]
agent = "vip"
params = { ip = "10.0.0.100", cidr = 24 }
"""


def run(*argv: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=300, check=False, cwd=cwd
    )
    assert result.returncode == 0, f"{argv}: {result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed; returns its bin directory."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    wheels = base / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, source)
    (wheel,) = wheels.glob("hakeeper-*.whl")
    venv = base / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
        "--no-index", wheel)  # fmt: skip
    # hakeeper/__init__.py needs no dependency: where it comes from, before they are added.
    site, where = run(
        python, "-c",
        "import sysconfig, hakeeper; print(sysconfig.get_paths()['purelib']); "
        "print(hakeeper.__file__)",
    ).split()  # fmt: skip
    assert where.startswith(str(venv)), f"hakeeper came from {where}, not the wheel"
    (Path(site) / "deps-from-test-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin"


def test_the_installed_wheel_runs_from_the_fresh_venv(fresh: Path) -> None:
    assert run(fresh / "hakeeper", "--version").strip() == "hakeeper 0.1.0"


def test_the_installed_wheel_validates_an_example_config(fresh: Path, tmp_path: Path) -> None:
    example = tmp_path / "cluster.toml"
    example.write_text(EXAMPLE)

    out = run(fresh / "hakeeper", "config", "validate", example)

    assert "valid" in out


def test_the_installed_wheel_carries_the_systemd_unit(fresh: Path, tmp_path: Path) -> None:
    run(fresh / "hakeeper", "init", "--install-unit", "--unit-dir", tmp_path)

    assert f"ExecStart={fresh / 'hakeeper'} agent" in (tmp_path / "hakeeper.service").read_text()
