"""The systemd unit: it passes `systemd-analyze verify` as `hakeeper init --install-unit`
writes it, and keeps the privileges a cluster manager needs (VIPs, processes, fencing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hakeeper.cli.init_nodes import UNIT_EXECUTABLE, unit_text
from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parent.parent.parent
HAKEEPER = str(Path(sys.executable).parent / "hakeeper")


def directives(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found[key] = value
    return found


def test_the_installed_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    require_binary("systemd-analyze")
    unit = tmp_path / "hakeeper.service"
    unit.write_text(unit_text(HAKEEPER))

    result = subprocess.run(
        ["systemd-analyze", "verify", "--", str(unit)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    # verify only warns about an unknown key or a bad value: a warning is a failure here.
    problems = [line for line in result.stderr.splitlines() if str(unit) in line]
    assert not problems, "\n".join(problems)


def test_the_shipped_file_is_the_one_init_installs() -> None:
    shipped = (ROOT / "deploy" / "hakeeper.service").read_text()

    assert unit_text(UNIT_EXECUTABLE) == shipped
    assert f"ExecStart={HAKEEPER} agent " in unit_text(HAKEEPER)


def test_the_unit_keeps_the_capabilities_for_vips_processes_and_nothing_more() -> None:
    unit = directives(unit_text(HAKEEPER))
    caps = set(unit["CapabilityBoundingSet"].split())

    assert {"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_KILL", "CAP_SETUID"} <= caps
    assert not caps & {"CAP_SYS_ADMIN", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_PTRACE"}
    # SIGTERM to the daemon alone: it stops the resources itself, in order.
    assert unit["KillMode"] == "mixed"
    assert unit["NoNewPrivileges"] == "yes"
    assert unit["ProtectSystem"] == "full"
