"""`hakeeper balance --workers 2`: real processes sharing a port, one view of health."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hakeeper.balancer.api_token import token_digest
from hakeeper.lab.processes import ManagedProcess, free_port
from tests.balancer.backends import HttpBackend
from tests.balancer.conftest import get

pytestmark = pytest.mark.slow

TOKEN = "workers-test-token-0123456789abcdefghijklmno"


def api_get(api: str, path: str) -> object:
    with urllib.request.urlopen(f"http://{api}{path}", timeout=5) as resp:
        return json.loads(resp.read())


def api_post(api: str, path: str, body: dict[str, object]) -> object:
    request = urllib.request.Request(
        f"http://{api}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        return json.loads(resp.read())


@pytest.fixture
async def workers(
    tmp_path: Path,
) -> AsyncIterator[tuple[int, str, HttpBackend, HttpBackend, ManagedProcess]]:
    a = await HttpBackend("a").start()
    b = await HttpBackend("b").start()
    port, api_port = free_port(), free_port()
    path = tmp_path / "balancer.toml"
    path.write_text(
        f"""
[[frontend]]
name = "fe"
bind = "127.0.0.1:{port}"
backend = "be"

[[backend]]
name = "be"
servers = [{{ name = "a", address = "{a.address}" }}, {{ name = "b", address = "{b.address}" }}]
check = {{ type = "tcp", inter = 0.3, fall = 1, rise = 1 }}

[api]
bind = "127.0.0.1:{api_port}"
token_hash = "{token_digest(TOKEN)}"
"""
    )
    argv = [sys.executable, "-m", "hakeeper", "balance", "--config", str(path), "--workers", "2"]
    proc = ManagedProcess("balancer", argv, tmp_path / "balancer.log")
    proc.start()
    try:
        async with asyncio.timeout(30):
            while True:
                try:
                    if (await get(port)).status == 200:
                        break
                except OSError:
                    await asyncio.sleep(0.2)
        yield port, f"127.0.0.1:{api_port}", a, b, proc
    finally:
        proc.signal(signal.SIGTERM)
        if not proc.wait(15):
            proc.kill()
        await a.stop()
        await b.stop()


async def test_workers_serve_one_port_and_report_to_the_parent(
    workers: tuple[int, str, HttpBackend, HttpBackend, ManagedProcess],
) -> None:
    port, api, a, b, _ = workers
    for _ in range(20):
        assert (await get(port)).status == 200
    async with asyncio.timeout(20):
        while True:  # workers report every second
            rows = await asyncio.to_thread(api_get, api, "/v1/servers")
            total = sum(r["requests"] for r in rows["servers"])  # type: ignore[index]
            if total >= 20:
                break
            await asyncio.sleep(0.3)
    assert a.requests + b.requests >= 20


async def test_parent_checks_and_api_changes_reach_every_worker(
    workers: tuple[int, str, HttpBackend, HttpBackend, ManagedProcess],
) -> None:
    port, api, a, b, _ = workers
    await asyncio.to_thread(api_post, api, "/v1/servers/be/a", {"action": "drain"})
    # The parent answers once it applied the change; each worker applies it as its order
    # arrives, a moment later on a loaded machine.
    async with asyncio.timeout(20):
        while True:  # fresh connections: the kernel spreads them over both workers
            before = a.requests
            bodies = {(await get(port)).body for _ in range(20)}
            if bodies == {b"b"} and a.requests == before:
                break
            await asyncio.sleep(0.2)
    await asyncio.to_thread(api_post, api, "/v1/servers/be/a", {"action": "ready"})
    await b.stop()
    async with asyncio.timeout(20):
        while True:
            rows = await asyncio.to_thread(api_get, api, "/v1/servers")
            states = {r["name"]: r["state"] for r in rows["servers"]}  # type: ignore[index]
            if states["b"] == "down":
                break
            await asyncio.sleep(0.2)
    bodies = {(await get(port)).body for _ in range(20)}
    assert bodies == {b"a"}
