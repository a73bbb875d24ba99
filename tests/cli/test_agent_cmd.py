"""`hakeeper agent` and its watchdog: refused when missing, disarmed on a failed start."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hakeeper.cli.main import app
from hakeeper.cli.plugins import RESOURCE_AGENTS
from hakeeper.config.loader import spec_from_text
from hakeeper.config.secret_file import write_secret_file
from hakeeper.errors import Unreachable
from hakeeper.fencing.watchdog import Watchdog
from hakeeper.model.cluster import WatchdogSpec
from hakeeper.model.timing import profile
from hakeeper.runtime import daemon as daemon_module
from hakeeper.runtime.daemon import NodeDaemon


def test_a_required_watchdog_that_is_missing_stops_the_agent_before_it_joins(
    tmp_path: Path,
) -> None:
    write_secret_file(tmp_path / "secret")
    config = tmp_path / "cluster.toml"
    config.write_text(
        f"""
[cluster]
name = "wd"

[coordination]
secret_file = "{tmp_path / "secret"}"

[nodes.n1]
address = "127.0.0.1"

[fencing]
watchdog = "required"
watchdog_device = "{tmp_path / "watchdog"}"
"""
    )
    result = CliRunner().invoke(
        app, ["agent", "--config", str(config), "--node", "n1", "--state-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert f"watchdog {tmp_path / 'watchdog'} unusable" in result.output


class FakeDevice:
    def __init__(self) -> None:
        self.disarmed = False

    def set_timeout(self, seconds: int) -> int:
        return seconds

    def keepalive(self) -> None:
        """Fed: nothing to record here."""

    def close(self, *, disarm: bool) -> None:
        self.disarmed = disarm


async def test_an_agent_that_fails_to_start_disarms_its_watchdog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = spec_from_text('[cluster]\nname = "wd"\n[nodes.n1]\naddress = "127.0.0.1"\n', "t")
    device = FakeDevice()
    watchdog = Watchdog(WatchdogSpec("required"), profile("default"), opener=lambda path: device)

    async def unreachable(*args: object, **kwargs: object) -> None:
        raise Unreachable("no engine in this test")

    monkeypatch.setattr(daemon_module, "open_coordinator", unreachable)
    with pytest.raises(Unreachable):
        await NodeDaemon(spec, "n1", tmp_path, watchdog=watchdog, agents=RESOURCE_AGENTS).run()

    assert device.disarmed, "a start-up failure left the watchdog counting down"


def test_a_bad_api_listen_address_stops_the_agent_before_it_starts(tmp_path: Path) -> None:
    write_secret_file(tmp_path / "secret")
    config = tmp_path / "cluster.toml"
    secret = tmp_path / "secret"
    config.write_text(
        f'[coordination]\nsecret_file = "{secret}"\n[nodes.n1]\naddress = "127.0.0.1"\n'
    )
    result = CliRunner().invoke(
        app,
        ["agent", "--config", str(config), "--node", "n1", "--state-dir", str(tmp_path / "s"),
         "--api-listen", "no port"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--api-listen" in result.output
    assert not (tmp_path / "s").exists()
