"""One fence of a node at a time: a second request joins the one in flight."""

from __future__ import annotations

import asyncio
import random

from hakeeper.fencing.device import AttemptResult, FenceAction, FenceDevice
from hakeeper.fencing.in_flight import InFlightFences
from hakeeper.fencing.topology import Fencer, FencingPlan

PLAN = FencingPlan({"pdu": FenceDevice("pdu", "fence_dummy")})


class GatedRunner:
    """Each run waits for ``gate``: a fence still in flight until the test opens it."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.runs: list[tuple[str, str | None]] = []

    async def run(
        self, device: FenceDevice, action: FenceAction, node: str | None
    ) -> AttemptResult:
        self.runs.append((action, node))
        await self.gate.wait()
        return AttemptResult(device.name, action, node or "", True, 0, 0.0, "")


async def _no_sleep(_: float) -> None:
    return None


def fencer(runner: GatedRunner, table: InFlightFences | None) -> Fencer:
    return Fencer(PLAN, runner, rng=random.Random(1), sleep=_no_sleep, in_flight=table)


async def test_a_second_fence_of_the_same_node_joins_the_first_and_the_device_runs_once() -> None:
    runner, table = GatedRunner(), InFlightFences()
    first = asyncio.create_task(fencer(runner, table).fence("n1"))
    await asyncio.sleep(0)
    second = asyncio.create_task(fencer(runner, table).fence("n1"))
    await asyncio.sleep(0)
    runner.gate.set()
    outcomes = await asyncio.gather(first, second)
    assert [o.fenced for o in outcomes] == [True, True]
    assert runner.runs == [("off", "n1")]


async def test_a_fence_asked_after_the_last_one_ended_runs_the_device_again() -> None:
    runner, table = GatedRunner(), InFlightFences()
    runner.gate.set()
    await fencer(runner, table).fence("n1")
    await fencer(runner, table).fence("n1")
    assert runner.runs == [("off", "n1"), ("off", "n1")]


async def test_other_nodes_and_other_actions_do_not_join() -> None:
    runner, table = GatedRunner(), InFlightFences()
    runs = [
        asyncio.create_task(fencer(runner, table).fence(node, action))
        for node, action in (("n1", "off"), ("n2", "off"), ("n1", "reboot"))
    ]
    await asyncio.sleep(0)
    runner.gate.set()
    await asyncio.gather(*runs)
    assert sorted(runner.runs) == [("off", "n1"), ("off", "n2"), ("reboot", "n1")]


async def test_a_fence_whose_first_caller_is_cancelled_runs_on_for_the_one_that_joined() -> None:
    runner, table = GatedRunner(), InFlightFences()
    first = asyncio.create_task(fencer(runner, table).fence("n1"))
    await asyncio.sleep(0)
    second = asyncio.create_task(fencer(runner, table).fence("n1"))
    await asyncio.sleep(0)
    first.cancel()
    runner.gate.set()
    assert (await second).fenced
    assert first.cancelled()
    assert runner.runs == [("off", "n1")]
