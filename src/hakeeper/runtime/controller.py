"""The controller: snapshot → scheduler → the transition's graph, each action once its own
dependencies are done → again.

Runs only on the node holding the controller key, for as long as its term holds. Each cycle
reads one snapshot, asks the pure scheduler for the transition, and walks its graph. The
actions whose dependencies are done go out together: fences run here; every other action
becomes part of one assignment write guarded by the term (its revision is the new epoch).
Each is then confirmed by the node that runs it (its status shows the result under an epoch
at least as new), failed, or abandoned (the node went away, the op's timeout passed); every
confirmation may make more actions ready, which go out at once, while slower ones are still
in flight (the fourth 1-hour nemesis run lost data while a promote waited on an unrelated
stop of the same "wave"). A retraction is confirmed like a stop; a prune needs no
answer (its node is down). So cross-node order holds by construction (fence, then stop,
then start) and every decision sees what really happened (Pacemaker recomputes after every
event the same way). The controller decides nothing itself: what to retract and what to
prune is the scheduler's (`hakeeper.policy.assignments`).

A change anywhere under the cluster prefix wakes the loop at once; a periodic recheck covers
time-based rules (failure_timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from hakeeper.errors import CoordError, HakeeperError
from hakeeper.fencing.topology import Fencer
from hakeeper.model.cluster import DEFAULT_OP_TIMEOUT, ClusterSpec
from hakeeper.model.events import (
    ControllerElected,
    Event,
    FailoverFinished,
    FailoverStarted,
    NodeFenced,
    NodeJoined,
    NodeLost,
)
from hakeeper.model.records import Assignment, FencedMark, InstanceStatus
from hakeeper.model.transition import Action, Decision
from hakeeper.policy.assignments import assignment_after
from hakeeper.policy.scheduler import schedule
from hakeeper.runtime.events_log import EventLog
from hakeeper.runtime.fence_plan import devices_used
from hakeeper.runtime.observations import Observations, Observer
from hakeeper.runtime.observed import Observed
from hakeeper.runtime.snapshot import observe_cluster
from hakeeper.runtime.store import ClusterStore

log = logging.getLogger(__name__)

Verdict = Literal["done", "failed", "pending"]
RECHECK_INTERVAL = 5.0
FENCE_RETRY_INTERVAL = 2.0
ACTION_SLACK = 5.0


class Deposed(HakeeperError):
    """This node's controller term ended (another controller, or the key is gone)."""


@dataclass(frozen=True, slots=True)
class InFlight:
    action: Action
    epoch: int
    deadline: float  # monotonic


class Controller:
    def __init__(
        self,
        *,
        node: str,
        term: int,
        spec: Callable[[], ClusterSpec],
        store: ClusterStore,
        events: EventLog,
        fencer: Callable[[ClusterSpec], Fencer | None],
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        observer: Observer | None = None,
    ) -> None:
        self._node = node
        self._observer: Observer = observer if observer is not None else Observations()
        self._term = term
        self._spec = spec
        self._store = store
        self._events = events
        self._fencer = fencer
        self._wall = wall
        self._clock = clock
        self._changed = asyncio.Event()
        self._members: frozenset[str] | None = None
        self._lost_since: dict[str, float] = {}
        self._decisions: set[Decision] = set()
        self._history: asyncio.Task[tuple[frozenset[str], dict[str, float]]] | None = None
        #: This cycle's `_note_membership`, which runs beside its transition.
        self._noting: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Control the cluster until deposed (raises `Deposed`)."""
        log.info("event=controller_start node=%s term=%d", self._node, self._term)
        async with asyncio.TaskGroup() as tasks:
            # Two reads and a write to the engine, each a Raft commit, beside the first
            # observation rather than before it: a new controller often takes over in the
            # middle of a failover (its predecessor died with the node).
            elected = ControllerElected(ts=self._wall(), node=self._node, term=self._term)
            tasks.create_task(self._emit(elected), name="controller-elected")
            self._history = tasks.create_task(self._membership_history(), name="controller-history")
            watcher = tasks.create_task(self._watch_changes(), name="controller-watch")
            try:
                while True:
                    await self.cycle()
            finally:
                watcher.cancel()

    async def cycle(self) -> None:
        """One transition: run its DAG, or wait for a change.

        The whole graph runs, not only what is ready first: a restart in place is a stop and a
        start on the same node, and rescheduling after the stop would lose that intent.
        The transition is abandoned (nothing more is dispatched; what is in flight is waited
        for; the next cycle schedules afresh) when an action fails or something unexpected
        happens: a node joins or leaves, a promotion score changes, an instance fails."""
        self._changed.clear()
        spec, observed = await self._observe()
        # Who joined or was lost is noted beside the transition, not before it: the recovery
        # of a lost node's resources waits neither for its event to commit nor, on a new
        # controller, for the event log's history (a read of every event). (The log orders
        # events by their time, not by when they landed.) `_finish_failover` waits for it.
        self._noting = asyncio.create_task(self._note_membership(observed))
        try:
            await self._transition(spec, observed)
        finally:
            await self._noting

    async def _transition(self, spec: ClusterSpec, observed: Observed) -> None:
        started = time.perf_counter()
        transition = schedule(spec, observed.state)
        self._observer.scheduler_ran(time.perf_counter() - started)
        self._log_decisions(transition.decisions)
        actions = transition.actions
        # Nodes run their monitors themselves: nothing to dispatch.
        done = {i for i, a in enumerate(actions) if a.kind == "monitor"}
        if len(done) == len(actions):
            await self._wait_for_change(RECHECK_INTERVAL)
            return
        by_key = {a.key: i for i, a in enumerate(actions)}
        sent: set[int] = set(done)
        in_flight: list[InFlight] = []
        first, current = observed, observed
        stopping = ""  # why no further action is dispatched, once one failed or things changed
        while True:
            ready = [
                i for i in range(len(actions))
                if i not in sent and set(transition.needs(i)) <= done
            ]  # fmt: skip
            if ready and not stopping:
                # Dispatched as soon as its own dependencies are done, not when the slowest
                # action dispatched with them is: a promote must not wait on an unrelated stop.
                sent |= set(ready)
                batch = [actions[i] for i in ready]
                log.info("event=dispatch actions=%r", [a.key for a in batch])
                verdicts, more = await self._send(spec, current, batch)
                in_flight += more
            elif in_flight:
                verdicts, in_flight, (spec, current) = await self._confirm(first, in_flight)
            else:
                if stopping:
                    log.info("event=transition_abandoned reason=%s", stopping)
                return
            done |= {by_key[key] for key, verdict in verdicts.items() if verdict == "done"}
            failed = [key for key, verdict in verdicts.items() if verdict != "done"]
            if failed and not stopping:
                # A retraction nobody answered: the move must not happen (two copies).
                unanswered = any(actions[by_key[key]].kind == "retract" for key in failed)
                stopping = "retraction_unanswered" if unanswered else "action_failed"
            if ready and not stopping:
                # What was just written must be the base of the next write of the same
                # resource's assignment.
                spec, current = await self._observe()
            if not stopping and _unexpected(first, current):
                stopping = "cluster_changed"

    # --- observing ----------------------------------------------------------------------------

    async def _observe(self) -> tuple[ClusterSpec, Observed]:
        snapshot = await observe_cluster(self._store, self._spec(), self._wall())
        return snapshot.spec, snapshot.observed

    async def _watch_changes(self) -> None:
        async with contextlib.aclosing(self._store.changes()) as changes:
            async for _ in changes:
                self._changed.set()

    async def _wait_for_change(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._changed.wait()

    async def _note_membership(self, observed: Observed) -> None:
        await self._emit_all(await self._track_membership(observed))

    async def _track_membership(self, observed: Observed) -> list[NodeJoined | NodeLost]:
        """Note who joined and who was lost since the last look; the events that say so."""
        members = observed.members
        previous, self._members = self._members, members
        if previous is None:
            # `run` started the read beside the first observation; a cycle run on its own
            # (tests) reads it here.
            history = self._history or self._membership_history()
            seen, lost_at = await history
            previous = members | seen
            # A loss an earlier controller recorded counts from then, not from this first
            # look: a controller deposed mid-failover would otherwise report its end as ~0 s.
            wall, now_mono = self._wall(), self._clock()
            for node, ts in lost_at.items():
                if node not in members:
                    self._lost_since[node] = now_mono - max(0.0, wall - ts)
        now = self._wall()
        events: list[NodeJoined | NodeLost] = []
        for node in sorted(members - previous):
            self._lost_since.pop(node, None)
            events.append(NodeJoined(ts=now, node=node))
        for node in sorted(previous - members):
            state = observed.state.node(node)
            self._lost_since[node] = self._clock()
            reason = "lease_expired" if state.status == "lost" else "left"
            if state.fenced:
                reason = "suspected_and_fenced"  # `hakeeper.runtime.suspicion` removed it
            events.append(NodeLost(ts=now, node=node, reason=reason))
        return events

    async def _membership_history(self) -> tuple[frozenset[str], dict[str, float]]:
        """From the event log, for a controller's first look: the nodes it last saw join,
        and when it last saw each other node lost (wall clock).

        A controller that died with a node (often the node it ran on) wrote no `NodeLost`
        for it: its successor reports the loss from the log, so the event log, the alerts
        and the failover's duration do not lose it. A log it cannot read reports none.
        """
        try:
            events = await self._events.read()
        except CoordError as exc:
            log.warning("event=event_log_read_failed error=%r", str(exc))
            return frozenset(), {}
        last: dict[str, NodeJoined | NodeLost] = {}
        for event in events:
            if isinstance(event, NodeJoined | NodeLost):
                last[event.node] = event
        joined = frozenset(node for node, e in last.items() if isinstance(e, NodeJoined))
        lost_at = {node: e.ts for node, e in last.items() if isinstance(e, NodeLost)}
        return joined, lost_at

    def _log_decisions(self, decisions: Sequence[Decision]) -> None:
        current = set(decisions)
        for decision in sorted(current - self._decisions, key=str):
            level = logging.WARNING if decision.kind == "blocked" else logging.INFO
            fix = f" fix={' '.join(('hakeeper', *decision.fix))!r}" if decision.fix else ""
            log.log(
                level, "event=decision kind=%s message=%r%s", decision.kind, decision.message, fix
            )
        self._decisions = current

    # --- acting -----------------------------------------------------------------------------

    async def _fence_all(self, spec: ClusterSpec, fences: Sequence[Action]) -> dict[str, Verdict]:
        if not fences:
            return {}
        fencer = self._fencer(spec)
        if fencer is None:
            log.warning(
                "event=fence_impossible nodes=%r reason=no_devices", [a.node for a in fences]
            )
            await self._wait_for_change(RECHECK_INTERVAL)
            return {a.key: "failed" for a in fences}
        async with asyncio.TaskGroup() as tasks:
            runs = {a.key: tasks.create_task(self._fence(fencer, a.node)) for a in fences}
        verdicts: dict[str, Verdict] = {
            key: "done" if run.result() else "failed" for key, run in runs.items()
        }
        if "failed" in verdicts.values():
            # The resources stay blocked (status says why) and the next cycle fences again,
            # after a pause so a device that fails at once is not hammered.
            await asyncio.sleep(FENCE_RETRY_INTERVAL)
        return verdicts

    async def _fence(self, fencer: Fencer, node: str) -> bool:
        started = self._clock()
        outcome = await fencer.fence(node, "off")
        duration = self._clock() - started
        device = devices_used(outcome)
        self._observer.fence_finished(node, outcome.fenced, duration)
        log.info("event=fence node=%s ok=%s reason=%r", node, outcome.fenced, outcome.reason)
        await self._emit(
            NodeFenced(
                ts=self._wall(), node=node, device=device, duration=duration, ok=outcome.fenced
            )
        )
        if outcome.fenced:
            mark = FencedMark(by=device, ts=self._wall())
            self._guarded(await self._store.mark_fenced(node, mark, term=self._term))
        return outcome.fenced

    async def _send(
        self, spec: ClusterSpec, current: Observed, batch: Sequence[Action]
    ) -> tuple[dict[str, Verdict], list[InFlight]]:
        """Run ``batch``'s fences here and write the rest as one assignment write: the
        verdicts known at once (fences, prunes), and what is now in flight."""
        fenced = await self._fence_all(spec, [a for a in batch if a.kind == "fence"])
        written = [a for a in batch if a.kind != "fence"]
        in_flight = await self._dispatch(spec, current, written)
        # A prune is done once written: its node is down, nobody is there to answer.
        pruned: dict[str, Verdict] = {a.key: "done" for a in written if a.kind == "prune"}
        return {**fenced, **pruned}, in_flight

    async def _dispatch(
        self, spec: ClusterSpec, observed: Observed, actions: Sequence[Action]
    ) -> list[InFlight]:
        """One assignment write for ``actions``; those a node must answer, in flight."""
        changed: dict[str, Assignment] = {}
        for action in actions:
            assert action.resource is not None
            base = changed.get(action.resource) or observed.state.assignment(action.resource)
            changed[action.resource] = assignment_after(base, action)
        if not changed:
            return []
        epoch = self._guarded(await self._store.write_assignments(self._term, changed))
        now = self._clock()
        in_flight = [
            InFlight(a, epoch, now + _op_timeout(spec, a) + ACTION_SLACK)
            for a in actions
            if a.kind != "prune"
        ]
        for item in in_flight:
            await self._note_failover(spec, observed, item.action)
        return in_flight

    def _guarded(self, revision: int | None) -> int:
        """The revision of a write guarded by this term; `Deposed` when it did not land
        (None: another controller's term, or the key is gone)."""
        if revision is None:
            raise Deposed(f"controller term {self._term} of {self._node} ended: not writing")
        return revision

    async def _confirm(
        self, first: Observed, in_flight: list[InFlight]
    ) -> tuple[dict[str, Verdict], list[InFlight], tuple[ClusterSpec, Observed]]:
        """Wait until at least one dispatched action is done or failed: the verdicts by key,
        the actions still pending, and the spec and observation they were read with (what
        is sent next uses both, as fresh as the wave loop had them)."""
        while True:
            await self._wait_for_change(1.0)
            self._changed.clear()
            spec, observed = await self._observe()
            verdicts: dict[str, Verdict] = {}
            pending: list[InFlight] = []
            for item in in_flight:
                verdict = _verdict(item, observed)
                if verdict == "pending" and self._clock() > item.deadline:
                    log.warning("event=action_timeout action=%r", item.action.key)
                    verdict = "failed"
                if verdict == "pending":
                    pending.append(item)
                    continue
                log.info("event=action_%s action=%r epoch=%d", verdict, item.action.key, item.epoch)
                verdicts[item.action.key] = verdict
                if verdict == "done":
                    await self._finish_failover(first, item.action)
            if verdicts:
                return verdicts, pending, (spec, observed)

    # --- failover bookkeeping (for the event log and availability) -----------------------------

    def _failed_from(self, observed: Observed, resource: str) -> str | None:
        for status in observed.statuses:
            node_state = observed.state.node(status.node)
            if status.resource == resource and (
                status.role == "failed"
                or (node_state.status == "lost" and status.role != "stopped")
            ):
                return status.node
        return None

    async def _note_failover(self, spec: ClusterSpec, observed: Observed, action: Action) -> None:
        primitive = spec.primitive(action.resource or "")
        if action.kind != "start" or primitive is None or not primitive.meta.exclusive:
            return
        source = self._failed_from(observed, primitive.id)
        if source is not None and source != action.node:
            await self._emit(
                FailoverStarted(
                    ts=self._wall(),
                    resource=primitive.id,
                    from_node=source,
                    reason="node or instance failed",
                )
            )

    async def _finish_failover(self, before: Observed, action: Action) -> None:
        if action.kind != "start" or action.resource is None:
            return
        source = self._failed_from(before, action.resource)
        if source is None or source == action.node:
            return
        if self._noting is not None:
            await self._noting  # a new controller learns from the history when it was lost
        since = self._lost_since.get(source, self._clock())
        duration = self._clock() - since
        self._observer.failover_finished(action.resource, duration)
        await self._emit(
            FailoverFinished(
                ts=self._wall(), resource=action.resource, from_node=source,
                to_node=action.node, duration=duration,
            )
        )  # fmt: skip

    async def _emit_all(self, events: Sequence[Event]) -> None:
        for event in events:
            await self._emit(event)

    async def _emit(self, event: Event) -> None:
        try:
            await self._events.append(event)
        except CoordError as exc:
            log.warning("event=event_log_write_failed kind=%s error=%r", event.kind, str(exc))


def _unexpected(before: Observed, now: Observed) -> bool:
    """A change the running transition did not plan for: membership, a promotion score (as
    Pacemaker aborts a transition when a node attribute changes: a promote chosen by the
    old scores may now be refused), or a new failure."""
    if now.members != before.members:
        return True
    if now.state.promotion_scores != before.state.promotion_scores:
        return True
    failed_before = {
        (s.node, s.resource, s.instance) for s in before.statuses if s.role == "failed"
    }
    return any(
        s.role == "failed" and (s.node, s.resource, s.instance) not in failed_before
        for s in now.statuses
    )


def _status(observed: Observed, action: Action) -> InstanceStatus | None:
    for status in observed.statuses:
        if (status.node, status.resource, status.instance) == (
            action.node,
            action.resource,
            action.instance,
        ):
            return status
    return None


def _verdict(item: InFlight, observed: Observed) -> Verdict:
    action = item.action
    if observed.state.node(action.node).status != "online":
        return "failed"
    status = _status(observed, action)
    fresh = status is not None and status.epoch >= item.epoch
    if status is not None and fresh and status.role == "failed":
        return "failed"
    if action.kind in ("stop", "retract"):
        # Only an answer under this epoch counts: an older "stopped" (or no status at all)
        # may predate a start still in flight there under the previous assignment.
        return "done" if fresh and status is not None and status.role == "stopped" else "pending"
    want = {"start": ("started", "promoted"), "promote": ("promoted",), "demote": ("started",)}
    if status is not None and fresh and status.role in want.get(action.kind, ()):
        return "done"
    return "pending"


def _op_timeout(spec: ClusterSpec, action: Action) -> float:
    primitive = spec.primitive(action.resource or "")
    operation = action.operation
    if primitive is None or operation is None:
        return DEFAULT_OP_TIMEOUT
    return primitive.op_timeout(operation)
