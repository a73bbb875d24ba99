"""An API server on a free loopback port, over a `LocalCoordinator` holding a small cluster,
with one token per role (and an expired one); and a client that speaks to it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from hakeeper.api.server import serve
from hakeeper.balancer.api_token import token_digest
from hakeeper.config.api_section import ApiSection, ApiToken
from hakeeper.model.cluster import ClusterSpec
from hakeeper.runtime.node_view import NodeView
from hakeeper.runtime.observations import Observations
from hakeeper.runtime.store import ClusterStore
from tests.cli import conftest as cli_fixtures
from tests.fakes import LocalCoordinator

TOKENS = {"reader": "r" * 43, "operator": "o" * 43, "admin": "a" * 43, "old": "x" * 43}
ROLES = {"reader": "read", "operator": "operate", "admin": "admin", "old": "admin"}
READY_TIMEOUT = 10.0

# The small cluster of the CLI's tests: the same fixtures, not a copy.
config_file = cli_fixtures.config_file
coord = cli_fixtures.coord
store = cli_fixtures.store
spec = cli_fixtures.spec


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def api_section(**overrides: Any) -> ApiSection:
    tokens = {
        name: ApiToken(
            hash=token_digest(TOKENS[name]),
            role=ROLES[name],  # type: ignore[arg-type]
            expires=datetime.now(UTC) - timedelta(days=1) if name == "old" else None,
        )
        for name in TOKENS
    }
    return ApiSection(tokens=tokens, **overrides)


@dataclass
class Served:
    url: str
    port: int
    local: dict[tuple[str, int], str] = field(default_factory=dict)
    member: bool = True

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: object | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {TOKENS.get(token, token)}"
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
            session.request(method, self.url + path, json=body, headers=sent) as response,
        ):
            text = await response.text()
            try:
                return response.status, await response.json(content_type=None)
            except ValueError:
                return response.status, text


async def until_answered(api: Served, token: str, status: int, timeout: float) -> None:
    """Until a read of ``/v1/nodes`` with ``token`` answers ``status`` (a change of the
    token table took effect); TimeoutError after ``timeout``."""
    async with asyncio.timeout(timeout):
        while True:
            if (await api.call("GET", "/v1/nodes", token=token))[0] == status:
                return
            await asyncio.sleep(0.1)


async def until_listening(host: str, port: int, timeout: float) -> None:
    """Until a server accepts connections on ``host:port`` (TimeoutError after ``timeout``)."""
    async with asyncio.timeout(timeout):
        while True:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection(host, port)
                writer.close()
                return
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def served(
    coord: LocalCoordinator,
    store: ClusterStore,
    spec: ClusterSpec,
    api: ApiSection,
    spec_now: Callable[[], ClusterSpec] | None = None,
) -> AsyncIterator[Served]:
    """``spec_now``: the config in force as the daemon would change it (default: ``spec``)."""
    port = free_port()
    scheme = "https" if api.tls_cert_file else "http"
    box = Served(f"{scheme}://127.0.0.1:{port}", port)
    view = NodeView(
        "n1",
        spec_now or (lambda: spec),
        store,
        lambda: box.local,
        coord,
        lambda: box.member,
        Observations(),
    )
    task = asyncio.create_task(serve(view, api, f"127.0.0.1:{port}"))
    try:
        await until_listening("127.0.0.1", port, READY_TIMEOUT)
        yield box
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def api(
    coord: LocalCoordinator, store: ClusterStore, spec: ClusterSpec
) -> AsyncIterator[Served]:
    async with served(coord, store, spec, api_section()) as box:
        yield box
