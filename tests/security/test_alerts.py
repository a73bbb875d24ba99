"""Hostile alert targets: a webhook receiver that hangs, fails or floods, an agent that never
ends, a config that smuggles control characters or credentials. Each attack fails, the
dispatcher (the controller's) keeps running, and a normal alert afterwards is delivered."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from aiohttp import web

from hakeeper.config.loader import spec_from_text
from hakeeper.errors import ConfigError
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.events import AlertDelivered, AlertFailed, NodeJoined, NodeLost
from hakeeper.runtime.alert_agents import run_agent
from tests.conftest import alive, serve_webhook, webhook_receiver
from tests.fakes import LocalCoordinator
from tests.runtime.test_alerts import (
    KEY,
    NODES,
    append,
    dispatching,
    recorded,
    secret_file,
    until,
    until_recorded,
)


def two_hooks(bad_url: str, good_url: str, secret: Path, bad_extra: str = "") -> ClusterSpec:
    return spec_from_text(
        f"""{NODES}
[[alerts]]
id = "bad"
webhook = "{bad_url}"
secret_file = "{secret}"
timeout = "1s"
retries = 2
queue = 2
{bad_extra}

[[alerts]]
id = "good"
webhook = "{good_url}"
secret_file = "{secret}"
timeout = "5s"
retries = 0
""",
        "test",
    )


async def hang(request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")


async def fail(request: web.Request) -> web.StreamResponse:
    return web.Response(status=500, text="no")


async def flood(request: web.Request) -> web.StreamResponse:
    """200 OK, then a body without end (bounded here: 1 GiB at most, 30 s at most)."""
    response = web.StreamResponse(status=200)
    await response.prepare(request)
    chunk = b"x" * 65536
    deadline = time.monotonic() + 30
    for _ in range(16384):
        if time.monotonic() > deadline:
            break
        try:
            await response.write(chunk)
        except (ConnectionError, RuntimeError):
            break
    return response


async def test_a_hanging_receiver_delays_only_its_own_alerts(tmp_path: Path) -> None:
    coord = LocalCoordinator()
    secret = secret_file(tmp_path)
    async with (
        serve_webhook(hang) as bad,
        webhook_receiver(KEY) as good,
        dispatching(coord, two_hooks(bad, good.url, secret)) as dispatcher,
    ):
        # More events than the hanging alert's queue holds.
        for i in range(5):
            await append(coord, NodeJoined(time.time(), f"n{i}"))
        await until("the good receiver to get all five", lambda: len(good.bodies) == 5, 20)
        # The overflow of the hanging one is recorded as failed at once, not held.
        await until_recorded(coord, 7)  # five delivered, at least two overflowed
        failures = [r for r in await recorded(coord) if isinstance(r, AlertFailed)]
        assert any("queue full" in r.reason for r in failures)
        assert not dispatcher.task.done()  # type: ignore[attr-defined]
        # A normal alert afterwards.
        await append(coord, NodeLost(time.time(), "n2"))
        await until("a normal alert", lambda: len(good.bodies) == 6, 20)


async def test_a_failing_receiver_is_retried_with_backoff_then_recorded_failed(
    tmp_path: Path,
) -> None:
    coord = LocalCoordinator()
    secret = secret_file(tmp_path)
    async with (
        serve_webhook(fail) as bad,
        webhook_receiver(KEY) as good,
        dispatching(coord, two_hooks(bad, good.url, secret)) as dispatcher,
    ):
        await append(coord, NodeLost(time.time(), "n2"))
        await until_recorded(coord, 2)
        records = await recorded(coord)
        (failed,) = [r for r in records if isinstance(r, AlertFailed)]
        assert (failed.alert, failed.attempts, failed.reason[-8:]) == ("bad", 3, "HTTP 500")
        assert not dispatcher.task.done()  # type: ignore[attr-defined]
        await append(coord, NodeLost(time.time(), "n3"))
        await until("a normal alert", lambda: len(good.bodies) == 2, 20)


async def test_a_huge_answer_is_never_read(tmp_path: Path) -> None:
    coord = LocalCoordinator()
    secret = secret_file(tmp_path)
    async with (
        serve_webhook(flood) as bad,
        webhook_receiver(KEY) as good,
        dispatching(coord, two_hooks(bad, good.url, secret)) as dispatcher,
    ):
        started = time.monotonic()
        await append(coord, NodeLost(time.time(), "n2"))
        await until_recorded(coord, 2)
        # 2xx counts as delivered; the body (up to 1 GiB) was not waited for.
        assert time.monotonic() - started < 10
        delivered = {r.alert for r in await recorded(coord) if isinstance(r, AlertDelivered)}
        assert delivered == {"bad", "good"}
        assert not dispatcher.task.done()  # type: ignore[attr-defined]
        await append(coord, NodeLost(time.time(), "n3"))
        await until("a normal alert", lambda: len(good.bodies) == 2, 20)


async def test_an_agent_that_never_ends_and_floods_its_stderr_is_killed_with_its_children(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "child.pid"
    agent = tmp_path / "evil.sh"
    agent.write_text(
        f"#!/bin/sh\nsleep 3600 &\necho $! > {pid_file}\n"
        "while true; do echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx >&2; done\n"
    )
    os.chmod(agent, 0o755)

    outcome = await asyncio.wait_for(run_agent(str(agent), {"PATH": "/usr/bin:/bin"}, 1.0), 30)

    assert not outcome.ok
    assert "timed out after 1s" in outcome.reason
    child = int(pid_file.read_text())
    await until("the agent's child to be gone", lambda: not alive(child), 10)
    # A normal agent afterwards.
    assert (await run_agent("/bin/true", {}, 5.0)).ok


@pytest.mark.parametrize(
    ("entry", "refused_for"),
    [
        ('agent = "/bin/true"\nrecipients = ["a\\nb"]', "control characters"),
        ('agent = "/bin/true"\nparams = { x = "a\\u001b[31m" }', "control characters"),
        ('agent = "/bin/true"\nparams = { LD_PRELOAD = "/tmp/x.so" }', "environment variable"),
        ('agent = "/bin/true"\nparams = { CRM_alert_node = "n9" }', "environment variable"),
        ('agent = "bin/true"', "absolute path"),
        ('webhook = "https://user:pw@example.org/"\nsecret_file = "/s"', "user:password@"),
        ('webhook = "https://example.org/"', "needs secret_file"),
        ('webhook = "file:///etc/passwd"\nsecret_file = "/s"', "http:// or https://"),
    ],
)
def test_a_hostile_alert_entry_is_refused_with_the_reason(entry: str, refused_for: str) -> None:
    text = f'{NODES}\n[[alerts]]\nid = "x"\n{entry}\n'
    with pytest.raises(ConfigError, match=refused_for):
        spec_from_text(text, "test")
    # The same file with a sound entry loads.
    assert spec_from_text(f'{NODES}\n[[alerts]]\nid = "x"\nagent = "/bin/true"\n', "t").alerts
