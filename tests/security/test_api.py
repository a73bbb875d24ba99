"""Hostile tests of the REST API, each against a served API: the attack fails, the server
still answers, and a normal authorized action afterwards succeeds."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import pytest

from hakeeper.api import listener
from hakeeper.model.cluster import ClusterSpec
from hakeeper.runtime.store import ClusterStore
from tests.api.conftest import TOKENS, Served, api_section, served
from tests.api.conftest import config_file as config_file
from tests.api.conftest import coord as coord
from tests.api.conftest import spec as spec
from tests.api.conftest import store as store
from tests.cli.conftest import KEYS, online
from tests.fakes import LocalCoordinator

MOVE = "/v1/resources/vip/move"


@pytest.fixture
async def target(
    coord: LocalCoordinator, store: ClusterStore, spec: ClusterSpec, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Served]:
    monkeypatch.setattr(listener, "HEAD_TIMEOUT", 0.5)
    await online(coord, "n1", "n2", "n3")
    async with served(coord, store, spec, api_section(max_connections=20, max_streams=2)) as box:
        yield box


async def still_serves_and_acts(api: Served, store: ClusterStore) -> None:
    """The server is alive and an operator's move goes through."""
    status, body = await api.call("POST", MOVE, token="operator", body={"node": "n2"})
    assert status == 200, body
    assert await store.constraints_of("vip") == {"n2": "move"}


async def nothing_written(coord: LocalCoordinator) -> None:
    assert await coord.range(KEYS.constraints) == []


async def test_an_action_without_a_token_is_refused(
    target: Served, coord: LocalCoordinator, store: ClusterStore
) -> None:
    status, _ = await target.call("POST", MOVE, body={"node": "n2"})
    assert status == 401
    await nothing_written(coord)
    await still_serves_and_acts(target, store)


async def test_an_action_with_a_wrong_token_is_refused(
    target: Served, coord: LocalCoordinator, store: ClusterStore
) -> None:
    status, _ = await target.call("POST", MOVE, token="z" * 43, body={"node": "n2"})
    assert status == 401
    await nothing_written(coord)
    await still_serves_and_acts(target, store)


async def test_a_huge_authorization_header_is_refused(
    target: Served, coord: LocalCoordinator, store: ClusterStore
) -> None:
    status, _ = await target.call("POST", MOVE, token="o" * 8000, body={"node": "n2"})
    assert status in (400, 401, 431)
    await nothing_written(coord)
    await still_serves_and_acts(target, store)


async def test_an_action_from_a_foreign_origin_is_refused_even_with_a_token(
    target: Served, coord: LocalCoordinator, store: ClusterStore
) -> None:
    status, _ = await target.call(
        "POST", MOVE, token="operator", body={"node": "n2"},
        headers={"Origin": "http://evil.example"},
    )  # fmt: skip
    assert status == 403
    await nothing_written(coord)
    await still_serves_and_acts(target, store)


async def test_a_rebound_host_name_is_refused(
    target: Served, coord: LocalCoordinator, store: ClusterStore
) -> None:
    status, _ = await target.call(
        "POST", MOVE, token="operator", body={"node": "n2"},
        headers={"Host": f"evil.example:{target.port}"},
    )  # fmt: skip
    assert status == 403
    await nothing_written(coord)
    await still_serves_and_acts(target, store)


async def test_an_oversized_body_is_refused(
    target: Served, coord: LocalCoordinator, store: ClusterStore
) -> None:
    status, _ = await target.call(
        "POST", MOVE, token="operator", body={"node": "n2", "pad": "x" * 100_000}
    )
    assert status == 413
    await nothing_written(coord)
    await still_serves_and_acts(target, store)


async def test_slowloris_is_cut_after_the_head_deadline(
    target: Served, store: ClusterStore
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
    writer.write(b"GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    await writer.drain()
    async with asyncio.timeout(10):
        assert await reader.read() == b""  # closed by the server, no answer
    writer.close()
    await still_serves_and_acts(target, store)


async def test_a_connection_flood_is_bounded_then_served_again(
    target: Served, store: ClusterStore
) -> None:
    opened = []
    for _ in range(60):
        opened.append(await asyncio.open_connection("127.0.0.1", target.port))
    await asyncio.sleep(0.2)
    cut = 0
    for reader, _ in opened:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.05):
                if await reader.read() == b"":
                    cut += 1
    assert cut >= 40  # beyond max_connections = 20 every one is closed at once
    for _, writer in opened:
        writer.close()
    async with asyncio.timeout(10):
        while True:  # the closed ones free their places as the server sees them go
            with contextlib.suppress(aiohttp.ClientError):
                await still_serves_and_acts(target, store)
                break
            await asyncio.sleep(0.1)


async def test_streams_beyond_max_streams_are_refused(target: Served, store: ClusterStore) -> None:
    headers = {"Authorization": "Bearer " + TOKENS["reader"]}
    async with aiohttp.ClientSession() as session:
        streams = [
            await session.get(target.url + "/v1/events/stream", headers=headers) for _ in range(2)
        ]
        third = await session.get(target.url + "/v1/events/stream", headers=headers)
        assert third.status == 503
        third.release()
        for response in streams:
            assert response.status == 200
            response.close()
    await still_serves_and_acts(target, store)


async def test_hostile_availability_queries_are_refused_without_a_server_error(
    target: Served, store: ClusterStore
) -> None:
    # A float overflow, a not-a-number, a window beyond any float, and a flood of text.
    for query in (
        "target=-400%20nines",
        "target=nan%25",
        "window=1e308d",
        "window=" + "9" * 1_000 + "d",
    ):
        status, body = await target.call("GET", f"/v1/availability?{query}", token="reader")
        assert status == 400, (query, body)
    status, body = await target.call("GET", "/v1/availability?target=99.9%25", token="reader")
    assert status == 200, body
    await still_serves_and_acts(target, store)
