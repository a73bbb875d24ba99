"""ScoreWriter: an agent's promotion score written in the background, on a fake engine."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from hakeeper.errors import NoQuorum
from hakeeper.model.attributes import NodeAttribute
from hakeeper.runtime import score_writer
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.score_writer import ScoreWriter
from hakeeper.runtime.store import ClusterStore
from tests.fakes import LocalCoordinator

KEYS = KeySpace("c1")


async def scores(store: ClusterStore) -> dict[str, str]:
    live = await store.live_attributes()
    return {a.name: a.value for a in live.attributes if a.node == "n1"}


async def until_scores(store: ClusterStore, expected: dict[str, str]) -> None:
    deadline = asyncio.get_running_loop().time() + 10
    while (found := await scores(store)) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"scores still {found}"
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running() -> AsyncIterator[tuple[LocalCoordinator, ClusterStore, ScoreWriter]]:
    """A writer for n1 on a fake engine, its task cancelled when the block ends (and it
    must end: the executor's shutdown waits for it)."""
    coord = LocalCoordinator()
    store = ClusterStore(coord, KEYS)
    writer = ScoreWriter("n1", store)
    task = asyncio.create_task(writer.run())
    try:
        yield coord, store, writer
    finally:
        task.cancel()
        await asyncio.wait({task}, timeout=5)
        assert task.cancelled(), "the writer did not stop when cancelled"


async def test_the_newest_wanted_score_is_written() -> None:
    async with running() as (_, store, writer):
        writer.want("store", 10)
        writer.want("store", 100)
        await until_scores(store, {"master-store": "100"})


async def test_a_score_the_store_refused_is_written_once_it_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(score_writer, "RETRY_INTERVAL", 0.05)
    async with running() as (coord, store, writer):
        coord.fail_with = NoQuorum("no quorum")
        writer.want("store", -1)
        await asyncio.sleep(0.2)
        coord.fail_with = None
        await until_scores(store, {"master-store": "-1"})


async def test_want_returns_at_once_while_the_store_cannot_write() -> None:
    # The monitor that hands its score over must not wait on a node cut off from quorum;
    # and the writer, cancelled as its write fails, stops (it did not with wait_for).
    async with running() as (coord, _, writer):
        coord.fail_with = NoQuorum("no quorum")
        async with asyncio.timeout(0.1):
            writer.want("store", 100)
            await asyncio.sleep(0)


async def test_a_score_being_written_when_cleared_is_not_written_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running() as (_, store, writer):
        set_attribute = store.set_attribute

        async def slow_set(attribute: NodeAttribute) -> None:
            await asyncio.sleep(0.2)  # the write lands after the clear began
            await set_attribute(attribute)

        monkeypatch.setattr(store, "set_attribute", slow_set)
        writer.want("store", 100)
        await asyncio.sleep(0.05)
        await writer.clear("store")
        await asyncio.sleep(0.3)
        assert await scores(store) == {}
