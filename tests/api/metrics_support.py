"""Shared by the metrics tests: a cluster in an in-memory engine, and a tiny aiohttp app that
serves one handler on loopback (the real server is the daemon's, `hakeeper.api`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import ClientSession, ClientTimeout, web
from prometheus_client.parser import text_string_to_metric_families

from hakeeper.config.loader import spec_from_text
from hakeeper.model.cluster import ClusterSpec
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.store import ClusterStore
from tests.fakes import LocalCoordinator

KEYS = KeySpace("c1")
CLIENT_TIMEOUT = ClientTimeout(total=30)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def three_node_spec(extra: str = "") -> ClusterSpec:
    nodes = "".join(f'[nodes.n{i}]\naddress = "127.0.0.{10 + i}"\n' for i in (1, 2, 3))
    web_resource = '[resources.web]\nagent = "process"\nparams = { command = "sleep 1" }\n'
    return spec_from_text(f'[cluster]\nname = "c1"\n{nodes}{web_resource}{extra}', "test_api")


def in_memory_store() -> tuple[LocalCoordinator, ClusterStore]:
    coord = LocalCoordinator()
    return coord, ClusterStore(coord, KEYS)


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of an exposition page: (name, sorted labels) → value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@contextlib.asynccontextmanager
async def serving(path: str, handler: Handler) -> AsyncIterator[str]:
    """``handler`` at ``path`` on 127.0.0.1 (a free port); yields its URL."""
    app = web.Application()
    app.router.add_get(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        await runner.cleanup()


async def fetch(url: str) -> tuple[int, str, str]:
    """(status, content type, body) of a GET."""
    async with ClientSession(timeout=CLIENT_TIMEOUT) as session, session.get(url) as response:
        return response.status, response.headers["Content-Type"], await response.text()
