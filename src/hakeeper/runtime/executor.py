"""A node's executor: make the local instances match the controller's assignments.

Level-triggered: on every change of ``assignments/`` (and every few seconds) it compares what
runs here with what is assigned here and starts, stops, promotes or demotes to match — only for
resources that have an assignment; what a probe found running without one is left alone until
the controller decides. A change is acted on as the watch delivered it (a committed value with
its epoch, so no read of its own stands between the controller's write and the start); the
recheck every few seconds reads them all. Ops on one resource run one at a time; different
resources in parallel. After each op it reports the instance's status (under the epoch it acted
on) and appends the op's events. A failed instance is reported and left for the controller: it
never restarts on its own (the scheduler applies on_fail and migration_threshold). A failure in
the primary role that may have left the instance running (a failed promote; a primary's monitor
that did not find it stopped) is reported *demotable*: with ``on_fail = "demote"`` the
controller then assigns it as a replica, and this executor demotes it and monitors it as one
again.

Safety rule 1: while this node's membership deadline has passed it acts on no assignment, and
its guard has `hakeeper.runtime.self_fence` stop every exclusive resource (and, with
``no_quorum_policy = "stop"``, everything; with ``"demote"``, everything but a promotable
clone's instances, whose primary is demoted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path

from hakeeper.agents.base import OcfRc, OpResult, Severity
from hakeeper.agents.factory import AgentMaker
from hakeeper.errors import CoordError
from hakeeper.model.cluster import ClusterSpec, Primitive
from hakeeper.model.records import Assignment
from hakeeper.model.roles import LocalRole
from hakeeper.runtime.agent_ops import AgentOps, Key
from hakeeper.runtime.events_log import EventLog
from hakeeper.runtime.membership import Membership
from hakeeper.runtime.notifier import Notifier
from hakeeper.runtime.score_writer import ScoreWriter
from hakeeper.runtime.self_fence import Instances, Local, SelfFence, kept_replica
from hakeeper.runtime.store import ClusterStore

log = logging.getLogger(__name__)

RECHECK_INTERVAL = 2.0


class Executor:
    def __init__(
        self,
        *,
        node: str,
        spec: Callable[[], ClusterSpec],
        store: ClusterStore,
        events: EventLog,
        membership: Membership,
        state_dir: Path,
        agents: AgentMaker,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._node = node
        self._spec = spec
        self._store = store
        self._events = events
        self._membership = membership
        self._wall = wall
        self._local: dict[Key, Local] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._monitors: dict[Key, asyncio.Task[None]] = {}
        self._epochs: dict[str, int] = {}
        self._changed = asyncio.Event()
        #: Assignments the watch delivered that no converge has taken yet.
        self._arrived: dict[str, Assignment] = {}
        #: Whether the next converge reads every assignment (the first one, a recheck, after
        #: the guard or a broken watch) rather than acting on what the watch delivered.
        self._read_all = True
        self._idle = asyncio.Event()
        self._idle.set()
        self._starting: set[Key] = set()
        self._role_changing: set[Key] = set()
        #: The last failure of each instance, said again by `_still_failed`.
        self._failures: dict[Key, OpResult] = {}
        #: Failed instances whose failure was demotable (see the module docstring).
        self._demotable: set[Key] = set()
        self._converging: asyncio.Task[None] | None = None
        #: Instances each resource had placed here in the last assignment converged.
        self._placed: dict[str, set[int]] = {}
        #: The newest epoch under which each instance was reported stopped here.
        self._acked: dict[Key, int] = {}
        #: Set by the agent when a watchdog is armed (a failed self-fence stop then ends
        #: in a reset: the watchdog is not fed while something exclusive may run).
        self.watchdog_armed = False
        self._ops = AgentOps(
            node=node, spec=spec, store=store, events=events, state_dir=state_dir,
            agents=agents, wall=wall,
        )  # fmt: skip
        self._scores = ScoreWriter(node, store)
        self._notifier = Notifier(
            node=node, spec=spec, store=store,
            agent=lambda p: self._ops.agent(p, 0),
            local_role=lambda r: self._local[(r, 0)].role if (r, 0) in self._local else None,
            request=lambda p, meta: replace(self._ops.request(p, "notify"), meta=meta),
        )  # fmt: skip
        self._self_fence = SelfFence(
            spec=spec, membership=membership, ops=self._ops,
            instances=Instances(
                running=lambda: list(self._local.items()),
                set_local=self._set_local,
                stop_monitor=self._stop_monitor,
                start_monitor=self._start_monitor,
            ),
            watchdog_armed=lambda: self.watchdog_armed,
        )  # fmt: skip

    # --- public -------------------------------------------------------------------------------

    @property
    def local(self) -> dict[Key, str]:
        return {k: v.role for k, v in self._local.items()}

    async def wait_self_fenced(self) -> None:
        """Until the run loop has stopped what rule 1 requires (after the lease was lost)."""
        while not self._self_fence.done:
            self._wake_to_read_all()
            await asyncio.sleep(0.05)

    def holds_exclusive(self) -> bool:
        """Whether anything exclusive may run here: a local instance (failed ones too, since
        a failed stop may have left it running) or a start in flight."""
        spec = self._spec()
        for key in [*self._local, *self._starting]:
            resource = key[0]
            primitive = spec.primitive(resource)
            if primitive is None:
                return True
            if kept_replica(spec, resource, self._local.get(key)):
                continue  # what the self-fence keeps: no watchdog reset for it either
            if primitive.meta.exclusive:
                return True
        return False

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no instance runs here; False if some still do after ``timeout``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        return not self._local

    def _set_local(self, key: Key, local: Local | None) -> None:
        if local is None:
            self._local.pop(key, None)
        else:
            self._local[key] = local
        if local is None or local.role != "failed":
            self._demotable.discard(key)
        if self._local:
            self._idle.clear()
        else:
            self._idle.set()

    async def probe(self) -> None:
        """Find what already runs here (after a restart) and report it before acting.

        Each resource is probed under its lock: a converge must never acknowledge a removal
        (report "stopped") for an instance this probe is about to find running."""
        spec = self._spec()
        for primitive in spec.primitives:
            async with self._locks.setdefault(primitive.id, asyncio.Lock()):
                await self._probe_one(primitive)

    async def _probe_one(self, primitive: Primitive) -> None:
        key = (primitive.id, 0)
        result = await self._ops.agent(primitive, 0).monitor(
            self._ops.request(primitive, "monitor"), probe=True
        )
        if result.rc == OcfRc.FAILED_PROMOTED:
            # A primary that crashed here (PAF: controldata "in production", nothing
            # running): a failed instance to recover, never a primary to keep. Reported as
            # "promoted" it could win over the primary elected while this node was away.
            log.warning("event=probe_found_failed_primary resource=%s", primitive.id)
            await self._ops.record(primitive, result, "promoted")
            await self._failed(primitive, 0, 0, result)
            return
        if result.running:
            role: LocalRole = "promoted" if result.promoted else "started"
            self._set_local(key, Local(role, 0))
            await self._ops.report(primitive.id, 0, role, 0, result)
            self._start_monitor(primitive, 0)
            log.info("event=probe_found resource=%s role=%s", primitive.id, role)
        else:
            if key in self._local:  # e.g. a failed stop that the fence finished
                self._set_local(key, None)
            await self._store.forget_status(self._node, primitive.id, 0)

    async def run(self) -> None:
        """Converge on every change of the assignments, and every few seconds; the guard
        self-fences at the membership deadline whatever the converging is waiting on."""
        async with asyncio.TaskGroup() as tasks:
            watcher = tasks.create_task(self._watch(), name="executor-watch")
            scores = tasks.create_task(self._scores.run(), name="promotion-scores")
            guard = tasks.create_task(self._guard(), name="executor-guard")
            notified = tasks.create_task(self._notifier.answer_rounds(), name="notifications")
            try:
                read_all_at = 0.0
                while True:
                    self._changed.clear()
                    if self._membership.valid():
                        arrived, self._arrived = self._arrived, {}
                        now = asyncio.get_running_loop().time()
                        # Changes coming faster than the recheck must not postpone it.
                        if self._read_all or now - read_all_at >= RECHECK_INTERVAL:
                            given, read_all_at = None, now
                        else:
                            given = arrived
                        self._read_all = False
                        self._converging = asyncio.create_task(self.converge(given))
                        # wait(), not await: the guard may cancel this converge, which must
                        # not look like a cancellation of run() itself.
                        await asyncio.wait({self._converging})
                        if not self._converging.cancelled():
                            self._converging.result()
                        self._converging = None
                    else:
                        self._read_all = True  # nothing converged while the lease was lapsed
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(RECHECK_INTERVAL):
                            await self._changed.wait()
            finally:
                if self._converging is not None:
                    self._converging.cancel()
                watcher.cancel()
                scores.cancel()
                guard.cancel()
                notified.cancel()

    async def _guard(self) -> None:
        """Rule 1, independent of everything else here: at the membership deadline (or the
        moment the lease is reported lost) cancel any converging, which may be stuck on an
        engine that lost quorum or in a start, and stop what is exclusive."""
        membership = self._membership
        while True:
            if membership.valid():
                self._self_fence.rearm()
                # The deadline only moves later, so sleeping until it never oversleeps.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(membership.remaining()):
                        await membership.lost.wait()
                continue
            converging = self._converging
            if converging is not None and not converging.done():
                converging.cancel()
                await asyncio.wait({converging})
            await self._self_fence.fence()
            self._wake_to_read_all()
            await asyncio.sleep(RECHECK_INTERVAL / 4)

    async def converge(self, delivered: Mapping[str, Assignment] | None = None) -> None:
        """Act on the ``delivered`` assignments, or on every assignment read from the store."""
        if delivered is not None:
            assignments = delivered
        else:
            try:
                assignments = await self._store.assignments()
            except CoordError as exc:
                log.warning("event=assignments_unreadable error=%r", str(exc))
                return
        spec = self._spec()
        work: dict[str, Assignment] = {}
        for resource, assignment in assignments.items():
            if assignment.epoch < self._epochs.get(resource, 0):
                continue  # an older read than one already acted on
            self._epochs[resource] = assignment.epoch
            work[resource] = assignment
        async with asyncio.TaskGroup() as tasks:
            for resource, assignment in work.items():
                primitive = spec.primitive(resource)
                if primitive is not None:
                    tasks.create_task(self._converge_one(primitive, assignment))

    def check_agents(self, spec: ClusterSpec, resources: set[str]) -> None:
        """See `AgentOps.check`."""
        self._ops.check(spec, resources)

    def forget_agents(self, resources: set[str]) -> None:
        """See `AgentOps.forget`."""
        self._ops.forget(resources)

    async def shutdown(self, reason: str = "shutdown") -> None:
        """Stop every local instance (graceful leave); demote first where promoted."""
        spec = self._spec()
        for monitor in self._monitors.values():
            monitor.cancel()
        for (resource, instance), local in list(self._local.items()):
            primitive = spec.primitive(resource)
            if primitive is not None:
                await self._stop(primitive, instance, local, reason)

    # --- converging ---------------------------------------------------------------------------

    async def _converge_one(self, primitive: Primitive, assignment: Assignment) -> None:
        lock = self._locks.setdefault(primitive.id, asyncio.Lock())
        async with lock:
            wanted = {p.instance: p.role for p in assignment.on(self._node)}
            here = {i: v for (r, i), v in self._local.items() if r == primitive.id}
            for instance, local in here.items():
                if instance not in wanted:
                    await self._stop(primitive, instance, local, "assignment", assignment.epoch)
            await self._acknowledge_removal(primitive, assignment.epoch, set(here), set(wanted))
            for instance, role in sorted(wanted.items()):
                local_now = self._local.get((primitive.id, instance))
                if local_now is None and assignment.epoch < self._membership.joined_revision:
                    # Written while this node was not a member (it rebooted or rejoined
                    # since): no controller placed anything here then, so the placement is
                    # stale. The controller writes it again if it still means it.
                    log.info(
                        "event=start_deferred resource=%s instance=%d epoch=%d joined=%d "
                        "reason=assignment_older_than_membership",
                        primitive.id, instance, assignment.epoch,
                        self._membership.joined_revision,
                    )  # fmt: skip
                    continue
                if local_now is None:
                    if (
                        await self._start(primitive, instance, assignment.epoch)
                        and role == "promoted"
                    ):
                        await self._promote(primitive, instance, assignment.epoch)
                elif local_now.role == "started" and role == "promoted":
                    await self._promote(primitive, instance, assignment.epoch)
                elif local_now.role == "promoted" and role == "started":
                    await self._demote(primitive, instance, assignment.epoch)
                elif local_now.role == "failed" and local_now.epoch < assignment.epoch:
                    if (
                        role == "started"
                        and (primitive.id, instance) in self._demotable
                        and primitive.meta.on_fail == "demote"
                    ):
                        # on_fail = demote: the controller keeps it here as a replica.
                        await self._demote(primitive, instance, assignment.epoch)
                    else:
                        await self._still_failed(primitive, instance, assignment.epoch)

    async def _acknowledge_removal(
        self,
        primitive: Primitive,
        epoch: int,
        running: set[int],
        wanted: set[int],
    ) -> None:
        """Tell the controller, under the new epoch, that an instance placed here before is
        not running here now. Done under the resource's lock, so a start still in flight
        under the old assignment has finished and been stopped first: the controller starts
        an exclusive resource elsewhere only after this answer (or a fence)."""
        placed_before = self._placed.get(primitive.id, running | {0})
        self._placed[primitive.id] = wanted
        for instance in sorted(placed_before - wanted - running):
            key = (primitive.id, instance)
            if self._acked.get(key, -1) >= epoch or key in self._local:
                continue
            result = OpResult("stop", 0, Severity.OK, 0.0, resource=primitive.id)
            await self._ops.report(primitive.id, instance, "stopped", epoch, result)
            self._acked[key] = epoch

    async def _start(self, primitive: Primitive, instance: int, epoch: int) -> bool:
        key = (primitive.id, instance)
        await self._notifier.round(primitive, "pre", "start")
        self._starting.add(key)
        try:
            result = await self._ops.agent(primitive, instance).start(
                self._ops.request(primitive, "start", epoch)
            )
            if result.ok:
                self._set_local(key, Local("started", epoch))
        except asyncio.CancelledError:
            # Cut short (self-fencing): it may be running, so the self-fence must stop it.
            self._set_local(key, Local("started", epoch))
            raise
        finally:
            self._starting.discard(key)
        await self._ops.record(primitive, result, "started")
        if not result.ok:
            await self._failed(primitive, instance, epoch, result)
            return False
        await self._ops.report(primitive.id, instance, "started", epoch, result)
        self._start_monitor(primitive, instance)
        await self._notifier.round(primitive, "post", "start")
        return True

    async def _stop(
        self,
        primitive: Primitive,
        instance: int,
        local: Local,
        reason: str,
        epoch: int | None = None,
    ) -> None:
        """Stop one instance; on success report it ``stopped`` under ``epoch`` (the
        assignment that asked, so the controller can tell this answer from an older one)."""
        key = (primitive.id, instance)
        self._stop_monitor(key)
        agent = self._ops.agent(primitive, instance)
        if local.role == "promoted":
            await self._notifier.round(primitive, "pre", "demote")
            demoted = await agent.demote(self._ops.request(primitive, "demote", local.epoch))
            await self._ops.record(primitive, demoted, "promoted")
            if demoted.ok:
                self._set_local(key, Local("started", local.epoch))
                await self._notifier.round(primitive, "post", "demote")
        await self._notifier.round(primitive, "pre", "stop")
        result = await agent.stop(self._ops.request(primitive, "stop", local.epoch))
        await self._ops.record(primitive, result, "started", reason)
        if result.ok:
            self._set_local(key, None)
            acked = local.epoch if epoch is None else epoch
            self._acked[key] = acked
            await self._ops.report(primitive.id, instance, "stopped", acked, result)
            await self._forget_promotion_score(primitive)
            await self._notifier.round(primitive, "post", "stop")
        else:
            self._set_local(key, Local("failed", local.epoch))
            await self._ops.report(primitive.id, instance, "failed", local.epoch, result)

    async def _forget_promotion_score(self, primitive: Primitive) -> None:
        """A stopped instance can no longer be promoted here: its transient promotion score
        goes (a permanent one, ``crm_master -l forever``, is the agent's to manage)."""
        if self._spec().promotable_member(primitive.id):
            with contextlib.suppress(CoordError):
                await self._scores.clear(primitive.id)

    def _want_score(self, primitive: Primitive, result: OpResult) -> None:
        """The promotion score an in-process agent asked for with ``result`` (the session
        store's), written in the background (`ScoreWriter`)."""
        if result.promotion_score is not None and self._spec().promotable_member(primitive.id):
            self._scores.want(primitive.id, result.promotion_score)

    async def _promote(self, primitive: Primitive, instance: int, epoch: int) -> None:
        await self._notifier.round(primitive, "pre", "promote")
        key = (primitive.id, instance)
        with self._changing_role(key):
            try:
                result = await self._ops.agent(primitive, instance).promote(
                    self._ops.request(primitive, "promote", epoch)
                )
            except asyncio.CancelledError:
                # Cut short (self-fencing): it may be primary now, so demote before the stop.
                self._set_local(key, Local("promoted", epoch))
                raise
            if result.ok:
                self._set_local(key, Local("promoted", epoch))
        self._want_score(primitive, result)
        await self._ops.record(primitive, result, "started")
        if result.ok:
            await self._ops.report(primitive.id, instance, "promoted", epoch, result)
            await self._notifier.round(primitive, "post", "promote")
        else:
            # Still running unless the agent says it is not: demotable (on_fail = demote).
            demotable = result.rc != OcfRc.NOT_RUNNING
            await self._failed(primitive, instance, epoch, result, demotable=demotable)

    async def _demote(self, primitive: Primitive, instance: int, epoch: int) -> None:
        await self._notifier.round(primitive, "pre", "demote")
        key = (primitive.id, instance)
        with self._changing_role(key):
            result = await self._ops.agent(primitive, instance).demote(
                self._ops.request(primitive, "demote", epoch)
            )
            if result.ok:
                self._set_local(key, Local("started", epoch))
        await self._ops.record(primitive, result, "promoted")
        if result.ok:
            await self._ops.report(primitive.id, instance, "started", epoch, result)
            if key not in self._monitors:
                # A demote of an instance that had failed as the primary (on_fail = demote):
                # its monitor stopped with the failure, and it runs on as a replica.
                self._start_monitor(primitive, instance)
            await self._notifier.round(primitive, "post", "demote")
        else:
            await self._failed(primitive, instance, epoch, result)

    async def _still_failed(self, primitive: Primitive, instance: int, epoch: int) -> None:
        """Asked to run an instance that failed here and was not stopped since (a crashed
        primary the probe found, a failed stop): report the failure again under this epoch,
        so the controller plans its recovery (a stop first) instead of waiting out a start
        that never comes."""
        key = (primitive.id, instance)
        self._set_local(key, Local("failed", epoch))
        result = self._failures.get(key) or OpResult(
            "start", int(OcfRc.ERR_GENERIC), Severity.SOFT, 0.0,
            exit_reason="failed here and not stopped since", resource=primitive.id,
        )  # fmt: skip
        await self._ops.report(
            primitive.id, instance, "failed", epoch, result, demotable=key in self._demotable
        )

    async def _failed(
        self,
        primitive: Primitive,
        instance: int,
        epoch: int,
        result: OpResult,
        *,
        demotable: bool = False,
    ) -> None:
        key = (primitive.id, instance)
        self._failures[key] = result
        self._set_local(key, Local("failed", epoch))
        if demotable:
            self._demotable.add(key)
        else:  # a later failure (a failed demote) is recovered the usual way
            self._demotable.discard(key)
        self._stop_monitor(key)
        await self._store.record_failure(self._node, primitive.id, self._wall())
        await self._ops.report(primitive.id, instance, "failed", epoch, result, demotable=demotable)

    # --- monitoring ---------------------------------------------------------------------------

    def _start_monitor(self, primitive: Primitive, instance: int) -> None:
        key = (primitive.id, instance)
        self._stop_monitor(key)
        self._monitors[key] = asyncio.create_task(
            self._monitor(primitive, instance), name=f"monitor-{primitive.id}"
        )

    def _stop_monitor(self, key: Key) -> None:
        monitor = self._monitors.pop(key, None)
        if monitor is not None:
            monitor.cancel()

    @contextlib.contextmanager
    def _changing_role(self, key: Key) -> Iterator[None]:
        """While a promote or demote runs (until the new role is set), monitors of ``key``
        answer about a role in flux: `_monitor` discards them."""
        self._role_changing.add(key)
        try:
            yield
        finally:
            self._role_changing.discard(key)

    async def _monitor(self, primitive: Primitive, instance: int) -> None:
        key = (primitive.id, instance)
        interval = self._ops.interval(primitive)
        while True:
            await asyncio.sleep(interval)
            local = self._local.get(key)
            if local is None or local.role == "failed":
                return
            request = self._ops.request(primitive, "monitor", local.epoch, interval=interval)
            result = await self._ops.agent(primitive, instance).monitor(request)
            if key in self._role_changing or self._local.get(key) is not local:
                # A promote or demote ran during this monitor: its answer may be about either
                # role, not a failure (Pacemaker cancels the old role's recurring monitor and
                # ignores a result still in flight). The next one checks the new role.
                continue
            self._want_score(primitive, result)
            expected_promoted = local.role == "promoted"
            if result.ok and result.running and result.promoted == expected_promoted:
                continue
            log.warning(
                "event=monitor_failed resource=%s result=%r", primitive.id, result.describe()
            )
            await self._ops.record(primitive, result, local.role)
            self._monitors.pop((primitive.id, instance), None)
            # A primary found still running (in whatever state) may be demoted in place; one
            # found stopped or crashed (FAILED_PROMOTED: PAF's dead primary) may not.
            demotable = expected_promoted and result.rc not in (
                OcfRc.NOT_RUNNING,
                OcfRc.FAILED_PROMOTED,
            )
            await self._failed(primitive, instance, local.epoch, result, demotable=demotable)
            return

    async def _watch(self) -> None:
        while True:
            try:
                async with contextlib.aclosing(self._store.assignment_changes()) as changes:
                    async for assignment in changes:
                        self._arrived[assignment.resource] = assignment
                        self._changed.set()
            except CoordError as exc:
                log.warning("event=watch_failed error=%r", str(exc))
                self._read_all = True  # what changed while it was down is read, not delivered
                await asyncio.sleep(1.0)

    def _wake_to_read_all(self) -> None:
        self._read_all = True
        self._changed.set()
