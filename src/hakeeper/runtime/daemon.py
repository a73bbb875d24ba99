"""``hakeeper agent``: everything one node runs, each part a task with one owner.

    coordinator (embedded Raft member, or an etcd client)
    ├── membership      renew the member lease; its deadline gates everything below;
    │                   after losing it: self-fence, re-probe, rejoin, clear the fenced mark
    ├── watchdog        fed only while safe (see `hakeeper.fencing.watchdog`)
    ├── executor        probe, then converge local instances to the assignments
    ├── suspicion       fence a silent member before its lease runs out (if configured)
    ├── scheduling      say when this agent itself was not scheduled (as Corosync does)
    └── campaign        become controller when there is none; run it while the term holds

Shutdown is phased (SIGTERM/SIGINT): stop taking new work, stop the local resources, disarm
the watchdog, give the member lease back (so the others need not wait for its TTL), then
cancel what is left and close the coordinator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from hakeeper import __version__
from hakeeper.agents.factory import AgentMaker
from hakeeper.config.file_modes import PRIVATE_UMASK, private_dir
from hakeeper.config.loader import load_spec
from hakeeper.coord.base import Coordinator, MembershipChanges
from hakeeper.coord.raft_connection import wire_versions
from hakeeper.errors import ConfigError, CoordError, EngineMismatch
from hakeeper.fencing.fence_agents import FenceAgentRunner
from hakeeper.fencing.in_flight import InFlightFences
from hakeeper.fencing.topology import Fencer
from hakeeper.fencing.watchdog import Watchdog
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.records import MemberRecord
from hakeeper.model.wire_version import SUPPORTED, Format, FormatSupport
from hakeeper.runtime.alerts import AlertDispatcher
from hakeeper.runtime.config_in_force import LAST_GOOD_CONFIG, ConfigInForce
from hakeeper.runtime.connect import open_coordinator
from hakeeper.runtime.controller import Controller, Deposed
from hakeeper.runtime.controller_jobs import ControllerJob, JobRunner
from hakeeper.runtime.controller_teardown import STOP_TIMEOUT, cancel_within, resign_stuck_term
from hakeeper.runtime.crm_tools.install import DIR_NAME as TOOLS_DIR_NAME
from hakeeper.runtime.crm_tools.install import serving_tools, tools_dir
from hakeeper.runtime.election import ControllerElection
from hakeeper.runtime.event_retention import EventRetention
from hakeeper.runtime.events_log import EventLog
from hakeeper.runtime.executor import Executor
from hakeeper.runtime.fence_plan import fencer_of, plan_of
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.membership import Membership, renew_every
from hakeeper.runtime.node_view import Face, NodeView
from hakeeper.runtime.observations import Observations
from hakeeper.runtime.scheduling_watch import SchedulingWatch
from hakeeper.runtime.store import ClusterStore
from hakeeper.runtime.suspicion import SuspicionWatch

log = logging.getLogger(__name__)

HAND_OVER_TIMEOUT = 30.0
REMOVAL_CHECK_TIMEOUT = 60.0
#: What the agent keeps in its state dir: the Raft journal and dump, the agents' state and
#: logs, the last good config (tightened at start if an older version left them open).
STATE_OWNED = ("raft", "agents", TOOLS_DIR_NAME, LAST_GOOD_CONFIG)


def published_formats() -> tuple[FormatSupport, ...]:
    """The format versions this node speaks, for its member record: the Raft peer wire as
    offered (``HAKEEPER_RAFT_WIRE_MAX`` may cap it), the others as this release has them."""
    return tuple(
        FormatSupport(fmt, wire_versions() if fmt == Format.RAFT_PEER_WIRE else versions)
        for fmt, versions in SUPPORTED.items()
    )


class NodeDaemon:
    def __init__(
        self,
        spec: ClusterSpec,
        node: str,
        state_dir: Path,
        config_text: str = "",
        watchdog: Watchdog | None = None,
        *,
        agents: AgentMaker,
        jobs: Sequence[ControllerJob] = (),
        faces: Sequence[Face] = (),
        join: bool = False,
    ) -> None:
        if spec.node(node) is None:
            known = ", ".join(n.name for n in spec.nodes)
            raise ConfigError(f"node {node!r} is not in the cluster file (nodes: {known})")
        self.node = node
        self.state_dir = state_dir
        #: The config in force: the stored one, followed while the node runs.
        self.config = ConfigInForce(
            spec, node, state_dir, config_text, on_removed=self.request_stop
        )
        #: The resource-agent plug-in table, assembled by the face that starts the daemon.
        self.agents = agents
        #: Periodic work only the controller does (scheduled backups, drills), from the face.
        self.jobs = jobs
        #: What the node serves besides its resources (the REST API), assembled by the same face.
        self.faces = tuple(faces)
        #: A new node (``hakeeper agent --join``): it joins the Raft group as a learner first.
        self.join = join
        # Set once this process has held a member lease: a node found removed before that is
        # a removed node restarted with its old data (refused), after it a node that
        # `hakeeper node remove` retired while it ran (it stops cleanly).
        self._joined_once = False
        # The member lease, the watchdog and the suspicion watch keep the timing they start
        # with: a lease's TTL cannot change under it, and the watchdog counts down from it.
        # Everything else reads the current spec's, so a config that switches the profile
        # takes effect there at once, and for those three at the next start.
        self.lease_timing = spec.timing
        self._stop = asyncio.Event()
        #: Controller tasks that ignored their cancellation (`controller_teardown`).
        self._abandoned: set[asyncio.Task[None]] = set()
        self.watchdog = watchdog or self._watchdog()
        self._executor: Executor | None = None
        #: What this node's loops measure (lease renewals, scheduler runs, fences,
        #: failovers): the face that serves ``/metrics`` reads it.
        self.observations = Observations()
        #: The suspicion watch and the controller fence through these: one fence of a node
        #: at a time, a second request joins the first (fencing/in_flight.py); and one
        #: runner, so each agent's metadata is read once per daemon, not before every fence.
        self._fences = InFlightFences()
        self._fence_runner = FenceAgentRunner()

    @property
    def spec(self) -> ClusterSpec:
        return self.config.spec

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        # The journal, the last good config and the resources' logs live here: owner only.
        for entry in private_dir(self.state_dir, owned=STATE_OWNED):
            log.warning("event=state_dir_tightened was=%r", entry.describe())
        # Before anything else: "required" means no resources at all without a watchdog.
        self.watchdog.arm()
        try:
            coord = await open_coordinator(
                self.spec, node=self.node, state_dir=self.state_dir, join=self.join
            )
            try:
                tools = serving_tools(
                    node=self.node, spec=lambda: self.spec, state_dir=self.state_dir,
                    store=ClusterStore(coord, KeySpace(self.spec.options.name)),
                )  # fmt: skip
                async with tools:
                    await self._run_with(coord)
            finally:
                await coord.close()
        finally:
            # An agent that ends holding nothing exclusive (a clean stop, a failed start-up)
            # must not get its machine reset; one that dies holding something, must.
            if self._executor is None or not self._executor.holds_exclusive():
                self.watchdog.disarm()

    async def _run_with(self, coord: Coordinator) -> None:
        spec_now: Callable[[], ClusterSpec] = lambda: self.spec  # noqa: E731
        store = ClusterStore(coord, KeySpace(self.spec.options.name))
        # First: a node removed from the group finds out here, before anything else waits.
        await self._until_quorate(coord)
        # Before anything is read or written: a store a newer release wrote is never misread.
        store_format = await store.claim_format()
        log.info("event=store_format node=%s format=%d", self.node, store_format)
        events = store.event_log(self.node)
        await self.config.adopt_stored(store, events)
        me = self.spec.node(self.node)
        assert me is not None
        membership = store.membership(
            MemberRecord(self.node, me.address, __version__, published_formats()),
            self.lease_timing,
            time.monotonic,
            self.observations,
            lambda: renew_every(self.spec),
        )
        executor = Executor(
            node=self.node, spec=spec_now, store=store, events=events,
            membership=membership, state_dir=self.state_dir, agents=self.agents,
        )  # fmt: skip
        self._executor = executor
        watchdog = self.watchdog
        executor.watchdog_armed = watchdog.armed
        # Probe before joining and before clearing a fenced mark, so that the controller
        # never sees this node as a member with stale statuses (Pacemaker's probes).
        await self._until_quorate(coord)
        # Pacemaker's transient attributes end with the node's life in the cluster: the
        # promotion scores and attributes its agents wrote before are history now.
        await store.clear_transient_attributes(self.node)
        await executor.probe()
        await self._until_joined(membership)
        self._joined_once = True
        await store.rejoined(self.node)
        async with asyncio.TaskGroup() as tasks:
            renewing = tasks.create_task(
                self._keep_membership(coord, membership, executor, store), name="membership"
            )
            feeding = tasks.create_task(self._feed(watchdog, membership, executor), name="watchdog")
            executing = tasks.create_task(executor.run(), name="executor")
            configuring = tasks.create_task(
                self.config.follow(store, executor, events), name="config"
            )
            campaigning = tasks.create_task(
                self._campaign(store, events, membership, spec_now), name="campaign"
            )
            suspecting = tasks.create_task(
                SuspicionWatch(
                    node=self.node, store=store, spec=spec_now, events=events,
                    fencer=self._fencer, timing=self.lease_timing,
                ).run(),
                name="suspicion",
            )  # fmt: skip
            scheduling = tasks.create_task(
                SchedulingWatch(self.node, spec_now).run(), name="scheduling"
            )
            # Owned here, so its waiting agents are killed when the daemon stops.
            prestarting = tasks.create_task(
                self._fence_runner.keep_warm(lambda: plan_of(self.spec).devices.values()),
                name="fence-prestart",
            )
            view = NodeView(
                self.node,
                spec_now,
                store,
                lambda: executor.local,
                coord,
                membership.valid,
                self.observations,
            )
            serving = [tasks.create_task(face(view), name="face") for face in self.faces]
            removal = tasks.create_task(
                self._watch_removal(coord, store, membership), name="removal"
            )
            await self._stop.wait()
            removal.cancel()
            log.info("event=shutdown phase=hand_over node=%s", self.node)
            for face_task in serving:
                face_task.cancel()
            await self._hand_over(store, executor)
            suspecting.cancel()
            scheduling.cancel()
            campaigning.cancel()
            prestarting.cancel()
            configuring.cancel()
            executing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await executing
            log.info("event=shutdown phase=stop_resources node=%s", self.node)
            await executor.shutdown()
            feeding.cancel()
            if not executor.holds_exclusive():
                # Now, not later: nothing feeds it any more, and closing the engine can take
                # longer than its countdown.
                watchdog.disarm()
            renewing.cancel()
            with contextlib.suppress(CoordError):
                await membership.leave()
            log.info("event=shutdown phase=done node=%s", self.node)

    async def _hand_over(self, store: ClusterStore, executor: Executor) -> None:
        """Ask the controller to move our resources away (Pacemaker's shutdown), bounded."""
        try:
            await store.leaving(self.node)
        except CoordError as exc:
            log.warning("event=hand_over_skipped reason=%r", str(exc))
            return
        if not await executor.wait_idle(HAND_OVER_TIMEOUT):
            log.warning("event=hand_over_incomplete left=%r", sorted(executor.local))

    def _watchdog(self) -> Watchdog:
        me = self.spec.node(self.node)
        required = me is not None and me.watchdog
        mode = "required" if required else self.spec.watchdog_spec.mode
        return Watchdog(self.spec.watchdog_spec, self.lease_timing, mode=mode)

    async def _feed(self, watchdog: Watchdog, membership: Membership, executor: Executor) -> None:
        """Feed twice per renew interval while the rule allows it; a hung event loop (or a
        lease that cannot be renewed while something exclusive runs) stops the feeding."""
        if not watchdog.armed:
            return
        while True:
            watchdog.feed(
                lease_safe_until=membership.lease_safe_until,
                now=time.monotonic(),
                holds_exclusive=executor.holds_exclusive(),
            )
            await asyncio.sleep(self.lease_timing.renew_interval / 2)

    async def _keep_membership(
        self, coord: Coordinator, membership: Membership, executor: Executor, store: ClusterStore
    ) -> None:
        """Renew; once the lease is gone (expired while partitioned or paused), this node may
        have been fenced: let the executor self-fence, re-probe what runs here, then join
        with a new lease and clear the fenced mark, as after a restart."""
        while True:
            await membership.run()
            log.warning("event=member_lease_lost node=%s action=reprobe_and_rejoin", self.node)
            await executor.wait_self_fenced()
            await self._until_quorate(coord)
            await executor.probe()
            await self._until_joined(membership)
            with contextlib.suppress(CoordError):
                await store.rejoined(self.node)
            log.info("event=member_rejoined node=%s", self.node)

    async def _until_quorate(self, coord: Coordinator) -> None:
        """Ask again every renew interval until the engine has a majority (or a stop is
        requested). Not at once: an etcd minority member refuses without waiting, so asking
        in a loop would spin the event loop hot."""
        waiting = False
        # Beside the wait, not in it: the answer can take as long as a new client needs to
        # replay the log, and a quorum that comes back must be noticed at once.
        check: asyncio.Task[bool] | None = None
        try:
            while not self._stop.is_set() and not await coord.has_quorum():
                if waiting and check is None:
                    check = asyncio.create_task(self._removed(coord), name="removal-check")
                elif check is not None and check.done():
                    if check.result():  # raises for a removed node's old data at start-up
                        return
                    check = None
                if not waiting:
                    log.info("event=waiting_for_quorum node=%s", self.node)
                    waiting = True
                await self._pause(self.spec.timing.renew_interval)
        finally:
            if check is not None and not check.done():
                check.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await check

    async def _watch_removal(
        self, coord: Coordinator, store: ClusterStore, membership: Membership
    ) -> None:
        """A node `hakeeper node remove` retires is cut off by the others: its renewals
        neither succeed nor fail. It reads the change in flight while it can; once its lease
        has lapsed here, a recorded removal of this node means it was removed
        (it holds nothing: it was drained first), else it asks the group (`_removed`)."""
        announced = False
        while not self._stop.is_set():
            await self._pause(self.spec.timing.renew_interval)
            if time.monotonic() <= membership.deadline:
                with contextlib.suppress(CoordError):
                    change = await store.node_changes().current()
                    # From the drain on: the voter removal follows it within a heartbeat,
                    # faster than this loop reads.
                    announced = change is not None and change.leaving == self.node
                continue
            if announced:
                log.warning("event=node_removed node=%s action=stop", self.node)
                self.request_stop()
                return
            if await self._removed(coord):
                return

    async def _removed(self, coord: Coordinator) -> bool:
        """Without a majority, ask the group whether `hakeeper node remove` retired this node:
        if it did while this process ran, stop cleanly (it holds nothing: it was drained
        first); a node restarted with the data of a removed one is refused."""
        if not isinstance(coord, MembershipChanges):
            return False
        # Generous: the probe is a new client, which applies the group's log (or snapshot)
        # before its own command's answer, on a busy cluster many thousand entries.
        if not await coord.is_retired(REMOVAL_CHECK_TIMEOUT):
            return False
        if not self._joined_once:
            raise EngineMismatch(
                f"node {self.node} was removed from this cluster (`hakeeper node remove`) and "
                "a removed node never votes again: to bring this machine back, delete its "
                f"state directory {self.state_dir} and add it under a new address with "
                "`hakeeper node add`"
            )
        log.warning("event=node_removed node=%s action=stop", self.node)
        self.request_stop()
        return True

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if a stop is requested meanwhile."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()

    async def _until_joined(self, membership: Membership) -> None:
        while not self._stop.is_set():
            try:
                await membership.join()
                return
            except CoordError as exc:
                log.warning("event=join_waiting node=%s error=%r", self.node, str(exc))
                await asyncio.sleep(self.spec.timing.renew_interval)

    async def _campaign(
        self,
        store: ClusterStore,
        events: EventLog,
        membership: Membership,
        spec_now: Callable[[], ClusterSpec],
    ) -> None:
        election = store.election(self.node)
        while True:
            lease = membership.lease
            if lease is None or not membership.valid():
                await asyncio.sleep(self.spec.timing.renew_interval)
                continue
            try:
                current = await election.campaign(lease)
            except CoordError as exc:
                log.warning("event=campaign_failed error=%r", str(exc))
                await asyncio.sleep(self.spec.timing.renew_interval)
                continue
            if current.node != self.node:
                await self._until_controller_changes(election)
                continue
            controller = Controller(
                node=self.node, term=current.term, spec=spec_now, store=store,
                events=events, fencer=self._fencer, observer=self.observations,
            )  # fmt: skip
            runner = JobRunner(
                self.jobs, store=store, spec=spec_now, events=events, term=current.term
            )
            alerts = AlertDispatcher(
                node=self.node, term=current.term, spec=spec_now, store=store, events=events,
                tools_dir=str(tools_dir(self.state_dir)),
            )  # fmt: skip
            retention = EventRetention(events, lambda: spec_now().options)
            stuck = await self._lead(controller, membership, runner, alerts, retention)
            if stuck:
                # Kept referenced until they end, never awaited: their term is over.
                self._abandoned |= stuck
                for late in stuck:
                    late.add_done_callback(self._abandoned.discard)
                await resign_stuck_term(
                    election, current.term, stuck,
                    pause=self.spec.timing.renew_interval,
                    timeout=self.spec.timing.renew_interval * 5,
                )  # fmt: skip

    async def _lead(
        self,
        controller: Controller,
        membership: Membership,
        runner: JobRunner,
        alerts: AlertDispatcher,
        retention: EventRetention,
    ) -> set[asyncio.Task[None]]:
        """Run the controller (and its periodic jobs) until deposed, the engine fails, or
        membership lapses; deliver alerts and trim the event log meanwhile (neither ends the
        term: their own trouble is only logged). Returns the tasks that did not stop within
        `STOP_TIMEOUT` of their cancellation (`hakeeper.runtime.controller_teardown`)."""
        task = asyncio.create_task(controller.run(), name="controller")
        lost = asyncio.create_task(self._membership_lapses(membership))
        jobs = asyncio.create_task(runner.run(), name="controller-jobs")
        alerting = asyncio.create_task(alerts.run(), name="alerts")
        trimming = asyncio.create_task(retention.run(), name="events-retention")
        try:
            await asyncio.wait({task, lost, jobs}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stuck = await cancel_within((task, lost, jobs, alerting, trimming), STOP_TIMEOUT)
        for name, side in (("alerts", alerting), ("events_retention", trimming)):
            outcome = _outcome(side, stuck)
            if isinstance(outcome, Exception):
                log.error("event=%s_failed error=%r", name, repr(outcome))
        for result in (_outcome(t, stuck) for t in (task, lost, jobs)):
            if isinstance(result, BaseExceptionGroup):
                deposed = result.subgroup((Deposed, CoordError))
                if deposed is None:
                    raise result
                log.warning("event=controller_stopped reason=%r", str(deposed.exceptions[0]))
            elif isinstance(result, Deposed | CoordError):
                log.warning("event=controller_stopped reason=%r", str(result))
            elif isinstance(result, BaseException):
                raise result
        return stuck

    async def _membership_lapses(self, membership: Membership) -> None:
        """Return once the membership deadline passes (it moves forward on each renewal)."""
        while True:
            remaining = membership.deadline - time.monotonic()
            if remaining <= 0:
                break
            await asyncio.sleep(min(remaining, self.lease_timing.renew_interval))
        log.warning("event=controller_stopped reason=membership_lapsed node=%s", self.node)

    async def _until_controller_changes(self, election: ControllerElection) -> None:
        """Wait until the controller key is deleted (its holder is gone), or a while."""
        await election.vacated(self.spec.timing.member_ttl * 2)

    def _fencer(self, spec: ClusterSpec) -> Fencer | None:
        return fencer_of(spec, runner=self._fence_runner, in_flight=self._fences)


def _outcome(task: asyncio.Task[None], stuck: set[asyncio.Task[None]]) -> BaseException | None:
    """What a finished task raised (None: returned, cancelled, or still stuck)."""
    if task in stuck or task.cancelled():
        return None
    return task.exception()


def run_daemon(
    config: Path,
    node: str,
    state_dir: Path,
    *,
    agents: AgentMaker,
    jobs: Sequence[ControllerJob] = (),
    faces: Sequence[Face] = (),
    join: bool = False,
) -> None:
    """Entry point of ``hakeeper agent``: one node until SIGTERM/SIGINT, building its
    resources' agents with ``agents`` (the whole program's plug-in table); ``jobs`` run while
    it is controller, and it serves ``faces`` (the REST API) while it runs; ``join``: a new
    node joining a running cluster (`hakeeper node add`)."""
    # Everything this process creates (journal, dumps, copies, logs) is its owner's alone.
    os.umask(PRIVATE_UMASK)
    spec = load_spec(config)
    agent = NodeDaemon(
        spec,
        node,
        state_dir,
        config.read_text(encoding="utf-8"),
        agents=agents,
        jobs=jobs,
        faces=faces,
        join=join,
    )
    me = spec.node(node)
    assert me is not None
    # Resources inherit these, so one definition can bind or label per node.
    os.environ["HAKEEPER_NODE"] = node
    os.environ["HAKEEPER_NODE_ADDRESS"] = me.address

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, agent.request_stop)
        await agent.run()

    asyncio.run(main())
