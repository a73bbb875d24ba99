"""Fencing levels, retries and delays, with a scripted runner and a virtual clock."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from hakeeper.errors import ConfigError
from hakeeper.fencing.device import AttemptResult, FenceAction, FenceDevice
from hakeeper.fencing.topology import Fencer, FencingPlan


class ScriptedRunner:
    """Answers per device from a list of verdicts; the last verdict repeats."""

    def __init__(self, verdicts: dict[str, list[bool]]) -> None:
        self.verdicts = verdicts
        self.calls: list[tuple[str, str, str | None]] = []
        self._seen: dict[str, int] = defaultdict(int)

    async def run(
        self, device: FenceDevice, action: FenceAction, node: str | None
    ) -> AttemptResult:
        self.calls.append((device.name, action, node))
        answers = self.verdicts[device.name]
        ok = answers[min(self._seen[device.name], len(answers) - 1)]
        self._seen[device.name] += 1
        return AttemptResult(device.name, action, node or "", ok, 0 if ok else 1, 0.0, "")


class VirtualSleep:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


def fencer(plan: FencingPlan, runner: ScriptedRunner, sleep: VirtualSleep | None = None) -> Fencer:
    return Fencer(plan, runner, rng=random.Random(7), sleep=sleep or VirtualSleep())


def devices(*names: str, retries: int = 0) -> dict[str, FenceDevice]:
    return {n: FenceDevice(n, "fence_dummy", retries=retries) for n in names}


async def test_the_first_level_that_succeeds_fences_the_node() -> None:
    plan = FencingPlan(devices("ipmi", "pdu"), {"n1": (("ipmi",), ("pdu",))})
    runner = ScriptedRunner({"ipmi": [False], "pdu": [True]})
    outcome = await fencer(plan, runner).fence("n1")
    assert outcome.fenced
    assert outcome.level == 2
    assert [c[0] for c in runner.calls] == ["ipmi", "pdu"]


async def test_every_device_of_a_level_must_succeed() -> None:
    plan = FencingPlan(devices("psu1", "psu2"), {"n1": (("psu1", "psu2"),)})
    runner = ScriptedRunner({"psu1": [True], "psu2": [False]})
    outcome = await fencer(plan, runner).fence("n1")
    assert not outcome.fenced
    assert "every level failed" in outcome.reason


async def test_a_device_is_retried_until_it_succeeds() -> None:
    plan = FencingPlan(devices("ipmi", retries=2))
    runner = ScriptedRunner({"ipmi": [False, False, True]})
    outcome = await fencer(plan, runner).fence("n1")
    assert outcome.fenced
    assert len(outcome.attempts) == 3


async def test_without_topology_each_capable_device_is_a_level() -> None:
    plan = FencingPlan(
        {
            "only-n2": FenceDevice("only-n2", "fence_dummy", host_list=("n2",)),
            "any": FenceDevice("any", "fence_dummy"),
        }
    )
    assert plan.levels_for("n1") == (("any",),)
    assert plan.levels_for("n2") == (("only-n2",), ("any",))


async def test_no_capable_device_leaves_the_node_unfenced_with_the_fix() -> None:
    plan = FencingPlan({"x": FenceDevice("x", "fence_dummy", host_list=("n2",))})
    outcome = await fencer(plan, ScriptedRunner({})).fence("n1")
    assert not outcome.fenced
    assert "host_list" in outcome.reason


async def test_the_random_delay_stays_within_base_and_max() -> None:
    device = FenceDevice("d", "fence_dummy", delay_base=1.0, delay_max=2.0)
    sleep = VirtualSleep()
    shooter = fencer(FencingPlan({"d": device}), ScriptedRunner({"d": [True]}), sleep)
    for _ in range(20):
        await shooter.fence("n1")
    assert all(1.0 <= s <= 3.0 for s in sleep.slept)
    assert len(set(sleep.slept)) > 1


def test_a_level_naming_an_unknown_device_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown device"):
        FencingPlan(devices("ipmi"), {"n1": (("ipmi", "pdu"),)})
