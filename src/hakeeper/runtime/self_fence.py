"""Safety rule 1 on one node: once its membership deadline has passed, hold nothing exclusive.

`SelfFence.fence` stops every exclusive instance the executor holds here (with
``no_quorum_policy = "stop"``, every instance; with ``"demote"``, every instance but a
promotable clone's, whose primary is demoted to a replica and kept). Every stop runs at once,
bounded by the instant the engine may expire the lease (a process agent escalates to SIGKILL
of its process group within that bound), and nothing waits on the engine, which is likely
unreachable now: statuses and events are written afterwards, best effort (a rejoin re-probes
anyway). A stop that still fails leaves the instance here as failed, so the watchdog, if
armed, is no longer fed (`hakeeper.runtime.executor.Executor.holds_exclusive`).

The executor owns the instances and their monitors; it lends them through `Instances`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from hakeeper.agents.base import OpResult
from hakeeper.errors import CoordError
from hakeeper.model.cluster import ClusterSpec, Primitive
from hakeeper.model.roles import InstanceRole, LocalRole
from hakeeper.runtime.agent_ops import AgentOps, Key
from hakeeper.runtime.membership import Membership

log = logging.getLogger(__name__)

#: How long the statuses and events of a self-fence may take to be written (best effort).
REPORT_TIMEOUT = 2.0


@dataclass(slots=True)
class Local:
    """An instance running here, as the executor knows it: its role and the epoch of the
    assignment it was last acted on under."""

    role: LocalRole
    epoch: int


@dataclass(frozen=True, slots=True)
class Instances:
    """What the self-fence reads and changes of the executor's local instances."""

    running: Callable[[], list[tuple[Key, Local]]]
    set_local: Callable[[Key, Local | None], None]
    stop_monitor: Callable[[Key], None]
    start_monitor: Callable[[Primitive, int], None]


def kept_replica(spec: ClusterSpec, resource: str, local: Local | None) -> bool:
    """A promotable clone's replica that ``no_quorum_policy = "demote"`` keeps running
    through a lapsed membership (a primary is demoted to one first)."""
    return (
        spec.options.no_quorum_policy == "demote"
        and local is not None
        and local.role == "started"
        and spec.promotable_member(resource)
    )


class SelfFence:
    def __init__(
        self,
        *,
        spec: Callable[[], ClusterSpec],
        membership: Membership,
        ops: AgentOps,
        instances: Instances,
        watchdog_armed: Callable[[], bool],
    ) -> None:
        self._spec = spec
        self._membership = membership
        self._ops = ops
        self._instances = instances
        self._watchdog_armed = watchdog_armed
        #: Whether `fence` has run since the membership was last valid.
        self.done = False

    def rearm(self) -> None:
        """The membership is valid again: the next lapse fences afresh."""
        self.done = False

    async def fence(self) -> None:
        """The membership deadline passed: hold nothing exclusive (the module docstring)."""
        spec = self._spec()
        policy = spec.options.no_quorum_policy
        work = []
        for (resource, instance), local in self._instances.running():
            primitive = spec.primitive(resource)
            if primitive is None or not (primitive.meta.exclusive or policy in ("stop", "demote")):
                continue
            if local.role == "failed" and self.done:
                continue  # tried already; the watchdog is the escalation now
            # "demote": a promotable clone's replica runs on (its primary is demoted to one),
            # so an in-memory replicated store keeps its data through a quorum loss.
            if kept_replica(spec, resource, local):
                continue
            keep = policy == "demote" and spec.promotable_member(resource)
            work.append((primitive, instance, local, keep))
        if work:
            bound = max(0.1, self._membership.lease_safe_until - time.monotonic())
            async with asyncio.TaskGroup() as tasks:
                stops = [
                    (p, i, local.epoch, tasks.create_task(self._stop(p, i, local, bound, keep)))
                    for p, i, local, keep in work
                ]
            for primitive, instance, epoch, stop in stops:
                await self._report(primitive, instance, epoch, stop.result())
        self.done = True

    async def _stop(
        self, primitive: Primitive, instance: int, local: Local, bound: float, keep: bool
    ) -> list[OpResult]:
        """Demote (if primary) and stop; ``keep``: only demote, and keep it as a replica if
        the demote worked (``no_quorum_policy = "demote"``)."""
        key = (primitive.id, instance)
        self._instances.stop_monitor(key)
        log.warning(
            "event=self_fence resource=%s instance=%d reason=membership_deadline_passed "
            "bound_ms=%.0f",
            primitive.id, instance, bound * 1000,
        )  # fmt: skip
        agent = self._ops.agent(primitive, instance)
        results = []
        if local.role == "promoted":
            demote = self._ops.request(primitive, "demote", local.epoch, cap=bound / 2)
            results.append(await agent.demote(demote))
            if keep and results[-1].ok:
                self._instances.set_local(key, Local("started", local.epoch))
                self._instances.start_monitor(primitive, instance)
                return results
        results.append(
            await agent.stop(self._ops.request(primitive, "stop", local.epoch, cap=bound))
        )
        stopped = results[-1].ok
        self._instances.set_local(key, None if stopped else Local("failed", local.epoch))
        if not stopped:
            escalation = "watchdog" if self._watchdog_armed() else "none"
            log.error(
                "event=self_fence_failed resource=%s result=%r escalation=%s",
                primitive.id, results[-1].describe(), escalation,
            )  # fmt: skip
        return results

    async def _report(
        self, primitive: Primitive, instance: int, epoch: int, results: list[OpResult]
    ) -> None:
        """Best effort, bounded: tell the engine what self-fencing did. A stop that failed
        is reported as such: left as "started", the instance had no monitor any more (the
        self-fence cancelled it) and nobody learnt that it was gone or still there (the
        1-hour nemesis run: a VIP stop timed out at its 0.1 s bound, the address was gone,
        and the cluster kept it "running" on that node for minutes). A failed stop is
        recovered by fencing its node, as any failed stop."""
        with contextlib.suppress(CoordError, TimeoutError):
            async with asyncio.timeout(REPORT_TIMEOUT):
                for result in results:
                    role: InstanceRole = "promoted" if result.op == "demote" else "started"
                    await self._ops.record(primitive, result, role, "quorum-lost")
                last = results[-1]
                if last.op == "demote" and last.ok:
                    await self._ops.report(primitive.id, instance, "started", epoch, last)
                    return
                await self._ops.report(
                    primitive.id, instance, "stopped" if last.ok else "failed", epoch, last
                )
