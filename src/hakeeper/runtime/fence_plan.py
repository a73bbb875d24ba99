"""From the configured fence devices to a `Fencer`, and fencing one node with its record.

Used by the controller (fence-before-recover) and by ``hakeeper fence NODE`` (manual), so a
device fences the same way whoever asked: the same plan, levels, retries and delays, the same
``runtime/fenced/<node>`` mark and ``node.fenced`` event afterwards.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from hakeeper.fencing.device import FenceDevice, FenceOutcome
from hakeeper.fencing.fence_agents import FenceAgentRunner
from hakeeper.fencing.in_flight import InFlightFences
from hakeeper.fencing.topology import AgentRunner, Fencer, FencingPlan
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.cluster import FenceDevice as FenceDeviceSpec


def device_of(spec: FenceDeviceSpec) -> FenceDevice:
    return FenceDevice(
        spec.name,
        spec.agent,
        params={k: str(v) for k, v in spec.params.items()},
        host_map=dict(spec.hosts),
        host_list=spec.host_list,
        host_argument=spec.host_argument,
        timeout=spec.timeout,
        retries=spec.retries,
        delay_base=spec.delay_base,
        delay_max=spec.delay_max,
        prestart=spec.prestart,
    )


def plan_of(spec: ClusterSpec) -> FencingPlan:
    return FencingPlan({d.name: device_of(d) for d in spec.fence_devices}, spec.fence_levels)


def fencer_of(
    spec: ClusterSpec,
    *,
    runner: AgentRunner | None = None,
    rng: random.Random | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    in_flight: InFlightFences | None = None,
) -> Fencer | None:
    """None when the cluster has no fence device. Fencers sharing ``in_flight`` run one
    fence of a node at a time: a second request joins the first."""
    if not spec.fence_devices:
        return None
    return Fencer(
        plan_of(spec), runner or FenceAgentRunner(), rng=rng or random.Random(), sleep=sleep,
        in_flight=in_flight,
    )  # fmt: skip


def power_fences(spec: ClusterSpec, node: str) -> bool:
    """Whether every device that may fence ``node`` powers it off (agent included), so a
    confirmed fence alone proves it runs nothing: the premise of fencing on suspicion."""
    kinds = {d.name: d.kind for d in spec.fence_devices}
    levels = plan_of(spec).levels_for(node)
    return bool(levels) and all(kinds[name] == "power" for level in levels for name in level)


def devices_used(outcome: FenceOutcome) -> str:
    """The devices that took part, for the event log (``-`` when none ran)."""
    return ",".join(sorted({a.device for a in outcome.attempts})) or "-"
