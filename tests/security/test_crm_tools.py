"""Hostile clients of the tools' socket: each attack fails, the service stays up, and a signed
request afterwards is answered."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from hakeeper.config.secret_file import SecretFile, write_secret_file
from hakeeper.runtime.crm_tools.client import SocketClient
from hakeeper.runtime.crm_tools.protocol import MAX_LINE, ToolRequest, request_mac
from hakeeper.runtime.crm_tools.service import MAX_CLIENTS, AttributeService, socket_path
from hakeeper.runtime.store import ClusterStore
from tests.fakes import LocalCoordinator
from tests.runtime.crm_tools.test_service import KEYS, SPEC

SET_X = ToolRequest("attr_set", "n1", "x", "1")


@asynccontextmanager
async def service(state_dir: Path) -> AsyncIterator[ClusterStore]:
    write_secret_file(state_dir / "secret")
    store = ClusterStore(LocalCoordinator(), KEYS)
    svc = AttributeService(
        node="n1", spec=lambda: SPEC, store=store,
        secret=SecretFile(state_dir / "secret"), path=socket_path(state_dir),
    )  # fmt: skip
    async with svc.serving():
        yield store


async def exchange(path: Path, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_unix_connection(str(path), limit=4 * MAX_LINE)
    try:
        await reader.readline()
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()


async def still_serves(state_dir: Path, store: ClusterStore) -> None:
    client = SocketClient(socket_path(state_dir), state_dir / "secret")
    answer = await asyncio.to_thread(client.ask, ToolRequest("attr_set", "n1", "ok", "1"))
    assert answer.error == ""
    assert [a.name for a in (await store.live_attributes()).attributes] == ["ok"]


async def test_a_request_signed_with_another_secret_writes_nothing(short_dir: Path) -> None:
    async with service(short_dir) as store:
        mac = request_mac(b"not-the-cluster-secret-at-all", "whatever", SET_X)
        raw = json.dumps({"mac": mac, "request": SET_X.to_wire()}).encode() + b"\n"
        answer = json.loads(await exchange(socket_path(short_dir), raw))
        assert "not signed" in answer["error"]
        assert (await store.live_attributes()).attributes == ()
        await still_serves(short_dir, store)


async def test_a_replayed_mac_for_an_old_nonce_is_refused(short_dir: Path) -> None:
    async with service(short_dir) as store:
        secret = SecretFile(short_dir / "secret").get().current
        mac = request_mac(secret, "00" * 16, SET_X)  # the attacker saw an earlier nonce
        raw = json.dumps({"mac": mac, "request": SET_X.to_wire()}).encode() + b"\n"
        answer = json.loads(await exchange(socket_path(short_dir), raw))
        assert "not signed" in answer["error"]
        assert (await store.live_attributes()).attributes == ()
        await still_serves(short_dir, store)


async def test_an_oversized_line_is_dropped_unread(short_dir: Path) -> None:
    async with service(short_dir) as store:
        answer = await exchange(socket_path(short_dir), b"x" * (3 * MAX_LINE) + b"\n")
        assert b"refused" in answer
        await still_serves(short_dir, store)


async def test_idle_connections_beyond_the_limit_are_closed_and_others_still_served(
    short_dir: Path,
) -> None:
    async with service(short_dir) as store:
        held = [
            await asyncio.open_unix_connection(str(socket_path(short_dir)))
            for _ in range(MAX_CLIENTS)
        ]
        try:
            reader, writer = await asyncio.open_unix_connection(str(socket_path(short_dir)))
            assert await asyncio.wait_for(reader.read(), 30) == b""  # closed, no nonce
            writer.close()
        finally:
            for _, w in held:
                w.close()
        await asyncio.sleep(0)
        await still_serves(short_dir, store)


async def test_a_request_for_a_key_outside_the_attributes_is_refused(short_dir: Path) -> None:
    async with service(short_dir) as store:
        client = SocketClient(socket_path(short_dir), short_dir / "secret")
        for node, name in (("../assignments", "x"), ("n1", "../../config"), ("n1", "a b")):
            answer = await asyncio.to_thread(
                client.ask, ToolRequest("attr_set", node, name, "1", "forever")
            )
            assert answer.error
        assert (await store.live_attributes()).attributes == ()
        await still_serves(short_dir, store)
