"""Ending a controller term whose tasks would not stop (`runtime.controller_teardown`)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from hakeeper.runtime.controller_teardown import cancel_within, resign_stuck_term
from hakeeper.runtime.election import ControllerElection
from hakeeper.runtime.keys import KeySpace
from tests.fakes import LocalCoordinator

KEYS = KeySpace("c1")


async def _ignores_cancellation(release: asyncio.Event) -> None:
    # What a stuck controller task looks like: a cleanup that swallows the cancel and waits.
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await release.wait()


async def test_tasks_that_stop_when_cancelled_are_not_reported() -> None:
    tasks = {asyncio.create_task(asyncio.sleep(3600)) for _ in range(3)}

    assert await cancel_within(tasks, timeout=5.0) == set()
    assert all(t.cancelled() for t in tasks)


async def test_a_task_that_ignores_its_cancellation_is_returned_after_the_timeout() -> None:
    release = asyncio.Event()
    stuck = asyncio.create_task(_ignores_cancellation(release), name="controller")
    fine = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)  # both running

    assert await cancel_within({stuck, fine}, timeout=0.2) == {stuck}
    release.set()
    await stuck


async def test_a_stuck_term_is_logged_with_its_stack_and_resigned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    coord = LocalCoordinator()
    election = ControllerElection(coord, KEYS, "n1")
    lease = await coord.grant(3)
    term = (await election.campaign(lease)).term
    release = asyncio.Event()
    stuck = asyncio.create_task(_ignores_cancellation(release), name="controller")
    await asyncio.sleep(0)

    with caplog.at_level(logging.WARNING):
        await resign_stuck_term(election, term, {stuck}, pause=0.01, timeout=1.0)

    assert await election.current() is None  # another node may campaign now
    assert (await election.campaign(lease)).term > term
    assert "event=controller_stop_stuck task=controller" in caplog.text
    assert "_ignores_cancellation" in caplog.text
    release.set()
    stuck.cancel()
