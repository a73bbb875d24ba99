"""`hakeeper fence NODE`: the configured devices, as the controller would use them."""

from __future__ import annotations

from pathlib import Path

from hakeeper.api import actions
from hakeeper.config.loader import spec_from_text
from hakeeper.model.events import NodeFenced
from hakeeper.runtime.events_log import EventLog
from hakeeper.runtime.store import ClusterStore
from tests.cli.conftest import CLUSTER_TOML, KEYS, NOW
from tests.conftest import require_binary
from tests.fakes import LocalCoordinator


def with_device(status_file: Path) -> str:
    return CLUSTER_TOML + (
        "\n[fencing.devices.dummy]\n"
        'agent = "fence_dummy"\n'
        f'params = {{ type = "file", status_file = "{status_file}" }}\n'
        'host_argument = "none"\n'
    )


async def test_fence_powers_the_node_off_marks_it_and_logs_the_event(
    tmp_path: Path, coord: LocalCoordinator, store: ClusterStore
) -> None:
    require_binary("fence_dummy")
    status = tmp_path / "status"
    status.write_text("on")
    spec = spec_from_text(with_device(status), "test")

    fenced, lines = await actions.through_devices(coord, spec, "n3", action="off", now=lambda: NOW)

    assert fenced, lines
    assert status.read_text().strip() == "off"
    assert await coord.get(KEYS.fenced("n3")) is not None
    events = [e for e in await EventLog(coord, KEYS, "t").read() if isinstance(e, NodeFenced)]
    assert [(e.node, e.device, e.ok) for e in events] == [("n3", "dummy", True)]


async def test_a_failed_fence_marks_nothing_and_says_why(
    tmp_path: Path, coord: LocalCoordinator, store: ClusterStore
) -> None:
    text = CLUSTER_TOML + (
        "\n[fencing.devices.lab]\n"
        'agent = "fence_hakeeper_lab"\n'
        f'params = {{ targets_dir = "{tmp_path}" }}\n'
        "retries = 1\n"
    )
    spec = spec_from_text(text, "test")

    fenced, lines = await actions.through_devices(coord, spec, "n3", action="off", now=lambda: NOW)

    assert not fenced
    assert lines[-1].startswith("n3 NOT fenced: every level failed")
    assert len(lines) == 3  # two attempts (1 + retries), then the verdict
    assert await coord.get(KEYS.fenced("n3")) is None
