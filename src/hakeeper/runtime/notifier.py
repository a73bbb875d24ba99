"""Clone notifications: Pacemaker's pre/post ``notify`` around start, stop, promote, demote.

For a clone with ``notify = true``, the executor that is about to act on its local instance
calls `Notifier.round` ("pre"), acts, and on success calls it again ("post"). A round tells
every instance running at that moment on a member (this node's included, from its own view)
with the `hakeeper.model.notifications.notify_variables` of the operation: this node's agent
directly, the others through a `NotifyRound` in the store that each node's `answer_rounds`
loop runs and acknowledges. The acting node waits for every acknowledgement, bounded by the
``notify`` op timeout, as Pacemaker's transition waits for its notify actions: PAF's promote
reads what the other standbys wrote in their pre-promote notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from itertools import count

from hakeeper.agents.base import OpRequest, ResourceAgent
from hakeeper.agents.ocf import OcfAgent
from hakeeper.errors import CoordError
from hakeeper.model.cluster import ClusterSpec, Primitive
from hakeeper.model.notifications import (
    NotifyOperation,
    NotifyRound,
    NotifyType,
    notify_variables,
)
from hakeeper.model.roles import RUNNING_ROLES
from hakeeper.runtime.crm_tools.meta import clone_of
from hakeeper.runtime.store import ClusterStore

log = logging.getLogger(__name__)

ACK_POLL = 0.1
#: Beyond the notify op's own timeout: a target's daemon needs a moment to see the round.
ACK_SLACK = 5.0


class Notifier:
    def __init__(
        self,
        *,
        node: str,
        spec: Callable[[], ClusterSpec],
        store: ClusterStore,
        agent: Callable[[Primitive], ResourceAgent],
        local_role: Callable[[str], str | None],
        request: Callable[[Primitive, Mapping[str, str]], OpRequest],
    ) -> None:
        self._node = node
        self._spec = spec
        self._store = store
        self._board = store.notify_board()
        self._agent = agent
        self._local_role = local_role
        self._request = request
        self._ids = count(1)
        self._answering: set[asyncio.Task[None]] = set()

    def wants(self, primitive: Primitive) -> bool:
        clone = clone_of(self._spec(), primitive.id)
        return clone is not None and clone.notify

    async def round(
        self, primitive: Primitive, kind: NotifyType, operation: NotifyOperation
    ) -> None:
        """Tell every running instance, and wait (bounded) until each has run ``notify``."""
        if not self.wants(primitive):
            return
        try:
            await self._round(primitive, kind, operation)
        except CoordError as exc:
            # Best effort, as Pacemaker ignores a failed notify: the operation goes on.
            log.warning(
                "event=notify_round_failed resource=%s type=%s operation=%s error=%r",
                primitive.id, kind, operation, str(exc),
            )  # fmt: skip

    async def _round(
        self, primitive: Primitive, kind: NotifyType, operation: NotifyOperation
    ) -> None:
        spec = self._spec()
        live = await self._store.live_instances()
        roles = {
            s.node: s.role
            for s in live.statuses
            if s.resource == primitive.id
            and s.role in RUNNING_ROLES
            and s.node in live.members
            and s.node != self._node
        }
        own = self._local_role(primitive.id)
        if own in RUNNING_ROLES:
            roles[self._node] = own
        variables = notify_variables(
            resource=primitive.id,
            nodes=[n.name for n in spec.nodes],
            members=sorted(live.members | {self._node}),
            roles=roles,
            kind=kind,
            operation=operation,
            acting=[self._node],
        )
        others = tuple(sorted(n for n in roles if n != self._node))
        round_ = NotifyRound(
            primitive.id, f"{self._node}-{time.time_ns()}-{next(self._ids)}-{kind}-{operation}",
            self._node, others, variables,
        )  # fmt: skip
        if others:
            await self._board.post(round_)
        try:
            if self._node in roles:
                await self._notify_here(primitive, variables)
            if others:
                await self._wait_acks(primitive, round_)
        finally:
            if others:
                with contextlib.suppress(CoordError):
                    await self._board.end(primitive.id, round_.id)

    async def _wait_acks(self, primitive: Primitive, round_: NotifyRound) -> None:
        deadline = time.monotonic() + primitive.op_timeout("notify") + ACK_SLACK
        while True:
            acks = await self._board.acks(primitive.id, round_.id)
            missing = set(round_.targets) - acks
            if not missing:
                return
            if time.monotonic() >= deadline:
                log.warning(
                    "event=notify_unacknowledged resource=%s round=%s nodes=%s",
                    primitive.id, round_.id, ",".join(sorted(missing)),
                )  # fmt: skip
                return
            await asyncio.sleep(ACK_POLL)

    async def _notify_here(self, primitive: Primitive, variables: Mapping[str, str]) -> int:
        agent = self._agent(primitive)
        if not isinstance(agent, OcfAgent):
            return 0  # only OCF agents have a notify action
        result = await agent.run("notify", self._request(primitive, variables))
        if not result.ok:
            log.warning(
                "event=notify_failed resource=%s type=%s operation=%s rc=%d",
                primitive.id, variables.get("notify_type"), variables.get("notify_operation"),
                int(result.rc),
            )  # fmt: skip
        return int(result.rc)

    async def answer_rounds(self) -> None:
        """Run ``notify`` for every round that names this node, and acknowledge it."""
        try:
            while True:
                try:
                    async with contextlib.aclosing(self._board.rounds()) as rounds:
                        async for round_ in rounds:
                            if self._node in round_.targets and round_.initiator != self._node:
                                task = asyncio.create_task(self._answer(round_))
                                self._answering.add(task)
                                task.add_done_callback(self._answering.discard)
                except CoordError as exc:
                    log.warning("event=notify_watch_failed error=%r", str(exc))
                    await asyncio.sleep(1.0)
        finally:
            for task in list(self._answering):
                task.cancel()

    async def _answer(self, round_: NotifyRound) -> None:
        primitive = self._spec().primitive(round_.resource)
        rc = 0
        if primitive is not None and self._local_role(primitive.id) in RUNNING_ROLES:
            rc = await self._notify_here(primitive, round_.variables)
        with contextlib.suppress(CoordError):
            await self._board.ack(round_.resource, round_.id, self._node, rc)
