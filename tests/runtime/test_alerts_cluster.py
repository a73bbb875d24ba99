"""A real failover on a real three-node loopback cluster, told by Pacemaker's own file alert
agent (``alert_file.sh.sample``, run unchanged) and by a signed webhook: both record the same
failover, under the same revision.

The first node to start usually holds both the resource and the controller, so the crash
usually also moves the controller: the new one resumes alerting from the saved cursor."""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path

import pytest

from hakeeper.lab.loopback import LoopbackCluster
from tests.conftest import WebhookReceiver, require_file, webhook_receiver

pytestmark = pytest.mark.slow

SAMPLE = Path("/usr/share/pacemaker/alerts/alert_file.sh.sample")
KEY = b"alert-test-key-0123456789abcdef"


def resources(alerts_log: Path, hook_url: str, secret: Path) -> str:
    return f"""
[resources.db]
agent = "ocf:heartbeat:Dummy"
ops.monitor = {{ interval = "1s", timeout = "10s" }}

[[alerts]]
id = "file"
agent = "{SAMPLE}"
recipients = ["{alerts_log}"]
params = {{ debug_exec_order = "true" }}

[[alerts]]
id = "hook"
webhook = "{hook_url}"
secret_file = "{secret}"
kinds = ["node.lost", "node.fenced", "failover.finished"]
timeout = "5s"
"""


async def test_a_failover_is_told_by_pacemakers_file_agent_and_by_a_webhook(
    tmp_path: Path,
) -> None:
    require_file(SAMPLE)
    alerts_log = tmp_path / "alerts.log"
    secret = tmp_path / "hook.secret"
    secret.write_bytes(KEY + b"\n")
    os.chmod(secret, 0o600)
    async with webhook_receiver(KEY) as hook:
        lab = LoopbackCluster(tmp_path, resources(alerts_log, hook.url, secret), fence_device=True)
        try:
            await lab.start()
            before = await lab.wait_for("db to run", lambda o: len(o.running_on("db")) == 1)
            holder = before.running_on("db")[0]
            # The controller is told of the start too: alerts are flowing.
            await until_file(alerts_log, f"for 'db' on '{holder}': ok", lab)

            lab.crash(holder)

            await lab.wait_for("db to move", lambda o: o.running_on("db") not in ([], [holder]))
            moved = await until_hook(hook, "failover.finished", lab)
            text = await until_file(alerts_log, f"moved from {holder}", lab)
        finally:
            await lab.close()

    assert hook.bad_signatures == 0
    assert "node.fenced" in hook.kinds()
    finished = hook.bodies[moved]
    new_holder = finished["event"]["to_node"]
    assert finished["event"]["from_node"] == holder
    # The same failover in the file, under the same revision (debug_exec_order prints it).
    line = f"{finished['revision']:04d}. "
    failover = [entry for entry in text.splitlines() if entry.startswith(line)]
    assert failover, f"no line for revision {finished['revision']} in:\n{text}"
    assert f"for 'db' on '{new_holder}': moved from {holder}" in failover[0]
    assert re.search(rf"Fencing Operation off of {holder} by lab: OK", text)


async def until_file(path: Path, needle: str, lab: LoopbackCluster, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = await asyncio.to_thread(_read, path)
        if needle in text:
            return text
        await asyncio.sleep(0.2)
    raise AssertionError(f"{needle!r} never reached {path}:\n{text}\n{lab.tails()}")


async def until_hook(
    hook: WebhookReceiver, kind: str, lab: LoopbackCluster, timeout: float = 60
) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = hook.kinds()
        if kind in seen:
            return seen.index(kind)
        await asyncio.sleep(0.2)
    raise AssertionError(f"the webhook never got {kind}\n{lab.tails()}")


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""
