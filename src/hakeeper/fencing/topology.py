"""Fencing a node through levels of devices (Pacemaker's fencing topology).

Levels are tried in order; a level succeeds when every one of its devices succeeded (e.g.
both power supplies' PDUs); the first level that succeeds fences the node. Without a
topology for a node, every device that can fence it is a level of its own, in configuration
order. Each device is tried ``1 + retries`` times, after its random delay.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from hakeeper.errors import ConfigError
from hakeeper.fencing.device import AttemptResult, FenceAction, FenceDevice, FenceOutcome
from hakeeper.fencing.in_flight import InFlightFences


class AgentRunner(Protocol):
    async def run(
        self, device: FenceDevice, action: FenceAction, node: str | None
    ) -> AttemptResult: ...


Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class FencingPlan:
    devices: Mapping[str, FenceDevice]
    levels: Mapping[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for node, node_levels in self.levels.items():
            for number, level in enumerate(node_levels, 1):
                missing = [name for name in level if name not in self.devices]
                if missing:
                    raise ConfigError(
                        f"fencing level {number} of node {node} names unknown device(s) "
                        f"{', '.join(missing)}: define them under [fencing.devices]"
                    )
                if not level:
                    raise ConfigError(f"fencing level {number} of node {node} is empty")

    def levels_for(self, node: str) -> tuple[tuple[str, ...], ...]:
        if node in self.levels:
            return self.levels[node]
        return tuple((name,) for name, device in self.devices.items() if device.can_fence(node))


class Fencer:
    """Fences nodes through a plan; every wait comes from the injected ``sleep``."""

    def __init__(
        self,
        plan: FencingPlan,
        runner: AgentRunner,
        *,
        rng: random.Random,
        sleep: Sleep,
        in_flight: InFlightFences | None = None,
    ) -> None:
        self._plan = plan
        self._runner = runner
        self._rng = rng
        self._sleep = sleep
        self._in_flight = in_flight

    async def fence(self, node: str, action: FenceAction = "off") -> FenceOutcome:
        """Fence ``node``; with ``in_flight``, join a fence of it already running."""
        if self._in_flight is None:
            return await self._fence(node, action)
        return await self._in_flight.run((node, action), lambda: self._fence(node, action))

    async def _fence(self, node: str, action: FenceAction) -> FenceOutcome:
        levels = self._plan.levels_for(node)
        if not levels:
            return FenceOutcome(
                node, action, False, None, (), "no fence device can fence this node: add one "
                "to [fencing.devices] or list the node in a device's host_list/host_map",
            )  # fmt: skip
        attempts: list[AttemptResult] = []
        for number, level in enumerate(levels, 1):
            if await self._run_level(level, node, action, attempts):
                devices = ", ".join(level)
                return FenceOutcome(
                    node,
                    action,
                    True,
                    number,
                    tuple(attempts),
                    f"done at level {number} ({devices})",
                )
        failures = "; ".join(a.describe() for a in attempts if not a.ok)
        return FenceOutcome(
            node, action, False, None, tuple(attempts), f"every level failed: {failures}"
        )

    async def _run_level(
        self, level: Sequence[str], node: str, action: FenceAction, attempts: list[AttemptResult]
    ) -> bool:
        for name in level:
            device = self._plan.devices[name]
            delay = device.delay_base + self._rng.uniform(0, device.delay_max)
            if delay > 0:
                await self._sleep(delay)
            for _ in range(1 + device.retries):
                result = await self._runner.run(device, action, node)
                attempts.append(result)
                if result.ok:
                    break
            else:
                return False
        return True
