"""Alert delivery by the controller: filters, records, the cursor across controller changes."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from hakeeper.config.loader import spec_from_text
from hakeeper.coord.base import WatchEvent
from hakeeper.errors import Compacted
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.events import (
    AlertDelivered,
    AlertFailed,
    Event,
    FailoverFinished,
    NodeLost,
    ResourceFailed,
)
from hakeeper.runtime.alerts import AlertDispatcher
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.store import ClusterStore
from tests.conftest import webhook_receiver
from tests.fakes import LocalCoordinator

KEYS = KeySpace("c1")
NODES = '[cluster]\nname = "c1"\n[nodes.n1]\naddress = "127.0.0.1"\n'
RESOURCES = """
[resources.db]
agent = "ocf:heartbeat:Dummy"
[resources.web]
agent = "ocf:heartbeat:Dummy"
[clones.web-clone]
resource = "web"
"""
KEY = b"0123456789abcdef0123456789abcdef"


def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "hook.secret"
    path.write_bytes(KEY + b"\n")
    os.chmod(path, 0o600)
    return path


def hook_spec(url: str, secret: Path, extra: str = "") -> ClusterSpec:
    text = f"""{NODES}{RESOURCES}
[[alerts]]
id = "hook"
webhook = "{url}"
secret_file = "{secret}"
timeout = "5s"
retries = 0
{extra}
"""
    return spec_from_text(text, "test")


async def until(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def recorded(coord: LocalCoordinator) -> list[Event]:
    events = await ClusterStore(coord, KEYS).event_log("reader").read()
    return [e for e in events if isinstance(e, AlertDelivered | AlertFailed)]


@asynccontextmanager
async def dispatching(
    coord: LocalCoordinator, spec: ClusterSpec, node: str = "n1"
) -> AsyncIterator[AlertDispatcher]:
    """A dispatcher under a fresh controller term (the controller key, created now)."""
    await coord.delete(KEYS.controller)
    term = await coord.put(KEYS.controller, node.encode())
    store = ClusterStore(coord, KEYS)
    dispatcher = AlertDispatcher(
        node=node, term=term, spec=lambda: spec, store=store, events=store.event_log(node),
        backoff=0.01,
    )  # fmt: skip
    task = asyncio.create_task(dispatcher.run())
    dispatcher.task = task  # type: ignore[attr-defined]
    # Started once it has saved where it follows from.
    await until("the dispatcher to start", lambda: dispatcher.cursor() > 0 or task.done())
    try:
        yield dispatcher
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def append(coord: LocalCoordinator, event: Event) -> int:
    return await ClusterStore(coord, KEYS).event_log("n2").append(event)


async def test_a_webhook_gets_each_event_signed_and_the_delivery_is_recorded(
    tmp_path: Path,
) -> None:
    coord = LocalCoordinator()
    async with webhook_receiver(KEY) as hook:
        spec = hook_spec(hook.url, secret_file(tmp_path))
        async with dispatching(coord, spec):
            revision = await append(coord, NodeLost(time.time(), "n2"))
            await until("the webhook", lambda: len(hook.bodies) == 1)

    assert hook.bad_signatures == 0
    assert hook.bodies[0]["revision"] == revision
    assert hook.bodies[0]["kind"] == "node"
    assert hook.bodies[0]["event"]["node"] == "n2"
    await until_recorded(coord, 1)
    (record,) = await recorded(coord)
    assert isinstance(record, AlertDelivered)
    assert (record.alert, record.event_kind, record.revision) == ("hook", "node.lost", revision)


async def until_recorded(coord: LocalCoordinator, count: int) -> None:
    deadline = time.monotonic() + 20
    while len(await recorded(coord)) < count:
        assert time.monotonic() < deadline, "the delivery was never recorded"
        await asyncio.sleep(0.02)


async def test_filters_by_kind_and_by_resource_including_a_clones_members(
    tmp_path: Path,
) -> None:
    coord = LocalCoordinator()
    extra = 'kinds = ["resource.failed", "node.lost"]\nresources = ["web-clone"]'
    async with webhook_receiver(KEY) as hook:
        spec = hook_spec(hook.url, secret_file(tmp_path), extra)
        async with dispatching(coord, spec):
            now = time.time()
            await append(coord, ResourceFailed(now, "db", "n1", "started", "monitor"))
            await append(coord, FailoverFinished(now, "web", "n1", "n2", 1.0))
            await append(coord, ResourceFailed(now, "web", "n1", "started", "monitor"))
            await append(coord, NodeLost(now, "n3"))
            await until("two deliveries", lambda: len(hook.bodies) == 2)
            await asyncio.sleep(0.3)  # nothing else comes

    assert hook.kinds() == ["resource.failed", "node.lost"]
    assert hook.bodies[0]["event"]["resource"] == "web"


async def test_a_new_controller_resumes_after_the_cursor_without_repeating_or_dropping(
    tmp_path: Path,
) -> None:
    coord = LocalCoordinator()
    secret = secret_file(tmp_path)
    async with webhook_receiver(KEY) as hook:
        spec = hook_spec(hook.url, secret)
        async with dispatching(coord, spec, "n1") as first:
            await append(coord, NodeLost(time.time(), "n2"))
            await until("the first delivery", lambda: len(hook.bodies) == 1)
            delivered = hook.bodies[0]["revision"]
            await until("the cursor saved", lambda: first._saved >= delivered)
        # No controller: an event nobody delivers yet.
        waiting = await append(coord, NodeLost(time.time(), "n3"))
        async with dispatching(coord, spec, "n2"):
            await until("the second delivery", lambda: len(hook.bodies) == 2)
            await asyncio.sleep(0.3)

    assert [b["revision"] for b in hook.bodies] == [delivered, waiting]


async def test_a_deposed_controller_stops_delivering(tmp_path: Path) -> None:
    coord = LocalCoordinator()
    async with webhook_receiver(KEY) as hook:
        spec = hook_spec(hook.url, secret_file(tmp_path))
        async with dispatching(coord, spec, "n1") as old:
            # Another controller's term: the old one's cursor write is refused.
            await coord.delete(KEYS.controller)
            await coord.put(KEYS.controller, b"n2")
            await append(coord, NodeLost(time.time(), "n2"))
            task = old.task  # type: ignore[attr-defined]
            await asyncio.wait_for(task, 20)

    assert task.exception() is None, "a deposed dispatcher ends quietly"
    assert old._saved < old.cursor(), "a deposed controller saved the cursor"


async def test_a_failed_delivery_is_recorded_with_its_reason(tmp_path: Path) -> None:
    coord = LocalCoordinator()
    # Nothing listens on the discard port of loopback.
    spec = hook_spec("http://127.0.0.1:9/hook", secret_file(tmp_path))
    async with dispatching(coord, spec):
        await append(coord, NodeLost(time.time(), "n2"))
        await until_recorded(coord, 1)

    (record,) = await recorded(coord)
    assert isinstance(record, AlertFailed)
    assert "127.0.0.1:9" in record.reason


async def test_an_agent_runs_once_per_recipient_with_its_instance_attributes(
    tmp_path: Path,
) -> None:
    coord = LocalCoordinator()
    agent = tmp_path / "agent.sh"
    agent.write_text(
        '#!/bin/sh\necho "$CRM_alert_kind $CRM_alert_node $colour" >> "$CRM_alert_recipient"\n'
    )
    os.chmod(agent, 0o755)
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    spec = spec_from_text(
        f"""{NODES}
[[alerts]]
id = "script"
agent = "{agent}"
recipients = ["{a}", "{b}"]
params = {{ colour = "red" }}
""",
        "test",
    )
    async with dispatching(coord, spec):
        await append(coord, NodeLost(time.time(), "n2"))
        await until("both recipients", lambda: a.exists() and b.exists())
        await until_recorded(coord, 2)

    assert a.read_text() == b.read_text() == "node n2 red\n"
    assert {r.recipient for r in await recorded(coord)} == {str(a), str(b)}


class CompactedBelow(LocalCoordinator):
    """An engine that no longer holds history up to ``compacted`` (as after a compaction)."""

    compacted = 0

    async def watch(  # type: ignore[override]
        self, prefix: str, start_revision: int | None = None
    ) -> AsyncIterator[WatchEvent]:
        if start_revision is not None and start_revision <= self.compacted:
            raise Compacted(f"revision {start_revision} is compacted")
        async for change in super().watch(prefix, start_revision):
            yield change


async def test_events_the_engine_no_longer_holds_are_skipped_and_alerting_goes_on(
    tmp_path: Path,
) -> None:
    coord = CompactedBelow()
    secret = secret_file(tmp_path)
    async with webhook_receiver(KEY) as hook:
        spec = hook_spec(hook.url, secret)
        async with dispatching(coord, spec, "n1") as first:
            delivered = await append(coord, NodeLost(time.time(), "n2"))
            await until("the first delivery", lambda: len(hook.bodies) == 1)
            await until("the cursor saved", lambda: first._saved >= delivered)
        await append(coord, NodeLost(time.time(), "n3"))  # then compacted away
        coord.compacted = await coord.revision()
        async with dispatching(coord, spec, "n2") as second:
            await until("the gap skipped", lambda: second.cursor() >= coord.compacted)
            later = await append(coord, NodeLost(time.time(), "n1"))
            await until("the later event", lambda: len(hook.bodies) == 2)

    assert [b["revision"] for b in hook.bodies] == [delivered, later]
