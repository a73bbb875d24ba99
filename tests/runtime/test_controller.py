"""The controller on an in-memory engine: it dispatches, confirms and records, deciding nothing.

Each test builds a named situation in the key space (`two_nodes_one_lost()`,
`singleton_moving_from_online_node()`, …), runs one `Controller.cycle()` (one transition of
the scheduler's) while `Nodes` plays the nodes' executors, and checks what was written. The
scheduler's decisions themselves are covered by tests/policy/scenarios.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass

import pytest

from hakeeper.config.loader import spec_from_text
from hakeeper.model.attributes import NodeAttribute
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.events import Event, FailoverFinished, FailoverStarted, NodeJoined, NodeLost
from hakeeper.model.records import Assignment, FencedMark, InstanceStatus, NodeFlags, Placement
from hakeeper.model.roles import InstanceRole
from hakeeper.runtime.controller import Controller, Deposed
from hakeeper.runtime.events_log import EventLog
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.observations import Observations
from hakeeper.runtime.record_codec import decode_assignment, encode_assignment
from hakeeper.runtime.store import ClusterStore
from tests.fakes import LocalCoordinator

KEYS = KeySpace("c1")
#: A whole cycle takes a few confirmation polls of a second each; this bounds a hung one.
CYCLE_TIMEOUT = 30.0


def spec_of(body: str) -> ClusterSpec:
    return spec_from_text(f'[cluster]\nname = "c1"\n{body}', "test_controller")


def resource(name: str) -> str:
    return f'[resources.{name}]\nagent = "process"\nparams = {{ command = "sleep 1" }}\n'


TWO_NODES = "[nodes.n1]\n[nodes.n2]\n"


@dataclass
class Cluster:
    """An in-memory engine holding one situation, and a controller elected on it."""

    coord: LocalCoordinator
    store: ClusterStore
    spec: ClusterSpec
    controller: Controller

    async def assignment(self, name: str) -> Assignment:
        """The assignment of ``name`` as written; placing nothing if it never was."""
        kv = await self.coord.get(KEYS.assignment(name))
        return (
            Assignment(name, ())
            if kv is None
            else decode_assignment(kv.value, name, kv.mod_revision)
        )

    async def status_revision(self, node: str, name: str) -> int:
        kv = await self.coord.get(KEYS.instance_status(node, name, 0))
        assert kv is not None, f"{node} never answered for {name}"
        return kv.mod_revision

    async def cycle(self) -> None:
        await asyncio.wait_for(self.controller.cycle(), CYCLE_TIMEOUT)

    async def written(self, name: str, placements: tuple[Placement, ...], since: int) -> None:
        """Until a write since revision ``since`` places ``name`` at ``placements``."""

        async def watch() -> None:
            changes = self.coord.watch(KEYS.assignment(name), start_revision=since)
            async with contextlib.aclosing(changes) as events:
                async for event in events:
                    written = decode_assignment(event.kv.value, name, event.kv.mod_revision)
                    if written.placements == placements:
                        return

        await asyncio.wait_for(watch(), CYCLE_TIMEOUT)


async def cluster(
    spec: ClusterSpec, online: Iterable[str], observer: Observations | None = None
) -> Cluster:
    """``online`` hold their member keys; the controller runs on the first of them,
    reporting to ``observer``."""
    coord = LocalCoordinator()
    store = ClusterStore(coord, KEYS)
    nodes = sorted(online)
    for node in nodes:
        await coord.put(KEYS.member(node), b"{}")
    election = store.election(nodes[0])
    term = (await election.campaign(await coord.grant(30.0))).term
    controller = Controller(
        node=nodes[0],
        term=term,
        spec=lambda: spec,
        store=store,
        events=EventLog(coord, KEYS, nodes[0]),
        fencer=lambda _: None,
        observer=observer,
    )
    return Cluster(coord, store, spec, controller)


async def assign(c: Cluster, name: str, *nodes: str) -> None:
    placements = tuple(Placement(n) for n in nodes)
    await c.coord.put(KEYS.assignment(name), encode_assignment(Assignment(name, placements)))


async def report(c: Cluster, node: str, name: str) -> None:
    await c.store.report(InstanceStatus(name, node, 0, "started", 1, time.time()))


# --- named situations ---------------------------------------------------------------------


async def two_nodes_nothing_running() -> Cluster:
    return await cluster(spec_of(TWO_NODES + resource("vip")), ["n1", "n2"])


async def two_nodes_one_lost(observer: Observations | None = None) -> Cluster:
    """n1 vanished while it ran vip; its watchdog has reset it by now (no fence needed)."""
    body = "fencing = false\n[fencing]\nwatchdog = true\n" + TWO_NODES + resource("vip")
    c = await cluster(spec_of(body), ["n2"], observer)
    await assign(c, "vip", "n1")
    await report(c, "n1", "vip")
    return c


async def singleton_moving_from_online_node() -> Cluster:
    """n1 went to standby while a start of vip was in flight there: the assignment names n1,
    no status does, so vip moves to n2 behind a retraction."""
    c = await two_nodes_nothing_running()
    await assign(c, "vip", "n1")
    await c.store.set_node_flags("n1", NodeFlags(standby=True))
    return c


async def ordered_pair(*, joining: str | None = None) -> Cluster:
    """``first`` then ``second`` (an order constraint): two steps. ``joining``, a third node
    of the config that is not a member yet."""
    nodes = TWO_NODES + (f"[nodes.{joining}]\n" if joining else "")
    order = '[[constraints.order]]\nfirst = "first"\nthen = "second"\n'
    body = nodes + resource("first") + resource("second") + order
    return await cluster(spec_of(body), ["n1", "n2"])


async def stale_placement_on_fenced_node() -> Cluster:
    """vip failed over from n1 to n2; n1 is confirmed fenced but the assignment names both."""
    c = await cluster(spec_of(TWO_NODES + resource("vip")), ["n2"])
    await assign(c, "vip", "n1", "n2")
    await report(c, "n2", "vip")
    await c.store.mark_fenced("n1", FencedMark(by="operator", ts=time.time()))
    return c


# --- the nodes ----------------------------------------------------------------------------


class Nodes:
    """Plays the executors of ``nodes`` as `hakeeper.runtime.executor` answers: on every
    assignment write, each reports its placements started or promoted (``failed`` for a
    (resource, node) in ``failing``) and ``stopped`` for a placement the write took away,
    under the write's epoch. A node in ``held`` answers only once its event is set;
    a resource in ``slow`` is answered only once its event is set, while the nodes go on
    answering for the others; ``before_answer`` runs before each answer (to change the
    cluster meanwhile)."""

    def __init__(
        self,
        c: Cluster,
        nodes: Iterable[str],
        *,
        failing: Iterable[tuple[str, str]] = (),
        held: dict[str, asyncio.Event] | None = None,
        slow: dict[str, asyncio.Event] | None = None,
        before_answer: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._c = c
        self._nodes = sorted(nodes)
        self._failing = set(failing)
        self._held = held or {}
        self._slow = slow or {}
        self._before_answer = before_answer

    @contextlib.asynccontextmanager
    async def answering(self) -> AsyncIterator[None]:
        placed = await self._c.store.assignments()
        since = await self._c.coord.revision() + 1
        task = asyncio.create_task(self._answer_all(placed, since))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _answer_all(self, placed: dict[str, Assignment], since: int) -> None:
        changes = self._c.coord.watch(KEYS.assignments, start_revision=since)
        async with contextlib.aclosing(changes) as events, asyncio.TaskGroup() as later:
            async for event in events:
                name = event.kv.key[len(KEYS.assignments) :]
                new = decode_assignment(event.kv.value, name, event.kv.mod_revision)
                old = placed.get(name, Assignment(name, ()))
                placed[name] = new
                for node in self._nodes:
                    if name in self._slow:
                        later.create_task(self._answer_when(self._slow[name], node, old, new))
                    else:
                        await self._answer(node, old, new)

    async def _answer_when(
        self, released: asyncio.Event, node: str, old: Assignment, new: Assignment
    ) -> None:
        await released.wait()
        await self._answer(node, old, new)

    async def _answer(self, node: str, old: Assignment, new: Assignment) -> None:
        gone = {p.instance for p in old.on(node)} - {p.instance for p in new.on(node)}
        answers: list[tuple[int, InstanceRole]] = [(p.instance, p.role) for p in new.on(node)]
        answers += [(i, "stopped") for i in sorted(gone)]
        if not answers:
            return
        if node in self._held:
            await self._held[node].wait()
        if self._before_answer is not None:
            await self._before_answer()
        for instance, role in answers:
            if role != "stopped" and (new.resource, node) in self._failing:
                role = "failed"
            status = InstanceStatus(new.resource, node, instance, role, new.epoch, time.time())
            await self._c.store.report(status)


# --- tests --------------------------------------------------------------------------------


async def test_an_action_goes_out_once_its_own_dependencies_are_done() -> None:
    # The fourth 1-hour nemesis run: a promote waited on an unrelated stop sent out with
    # what the promote depended on, and the data's last copy was fenced meanwhile.
    order = '[[constraints.order]]\nfirst = "first"\nthen = "second"\n'
    body = "[nodes.n1]\n" + resource("first") + resource("second") + resource("slow") + order
    c = await cluster(spec_of(body), ["n1"])
    released = asyncio.Event()
    since = await c.coord.revision() + 1
    async with Nodes(c, ["n1"], slow={"slow": released}).answering():
        cycle = asyncio.create_task(c.cycle())
        try:
            await c.written("second", (Placement("n1"),), since)
            assert (await c.assignment("slow")).placements == (Placement("n1"),)
        finally:
            released.set()
            await cycle


async def test_it_writes_the_first_ready_actions_assignment() -> None:
    c = await two_nodes_nothing_running()
    async with Nodes(c, ["n1", "n2"]).answering():
        await c.cycle()
    assert (await c.assignment("vip")).placements == (Placement("n1"),)


async def test_a_deposed_controller_writes_nothing() -> None:
    c = await two_nodes_nothing_running()
    await c.coord.delete(KEYS.controller)  # its term ends; another node is elected
    await c.store.election("n2").campaign(await c.coord.grant(30.0))
    with pytest.raises(Deposed, match="term"):
        await c.cycle()
    assert not (await c.assignment("vip")).placements


async def test_it_waits_for_the_retractions_answer_before_the_start() -> None:
    c = await singleton_moving_from_online_node()
    n1_may_answer = asyncio.Event()
    async with Nodes(c, ["n1", "n2"], held={"n1": n1_may_answer}).answering():
        since = await c.coord.revision() + 1
        running = asyncio.create_task(c.cycle())
        await c.written("vip", (), since)  # the retraction
        await asyncio.sleep(1.5)  # time enough to start vip on n2 if it did not wait
        n1_may_answer.set()
        await running
    vip = await c.assignment("vip")
    assert vip.placements == (Placement("n2"),)
    assert await c.status_revision("n1", "vip") < vip.epoch


async def test_it_abandons_the_transition_when_an_action_fails() -> None:
    c = await ordered_pair()
    async with Nodes(c, ["n1", "n2"], failing=[("first", "n1")]).answering():
        await c.cycle()
    assert (await c.assignment("first")).placements
    assert not (await c.assignment("second")).placements


async def test_it_abandons_the_transition_when_membership_changes() -> None:
    c = await ordered_pair(joining="n3")

    async def n3_joins() -> None:
        await c.coord.put(KEYS.member("n3"), b"{}")

    async with Nodes(c, ["n1", "n2"], before_answer=n3_joins).answering():
        await c.cycle()
    assert (await c.assignment("first")).placements
    assert not (await c.assignment("second")).placements


async def test_it_abandons_the_transition_when_a_promotion_score_changes() -> None:
    # A store's keeper of the data scored -1 when the transition was planned and may be
    # promoted now: the plan's later steps were chosen by the old scores.
    c = await ordered_pair()

    async def score_changes() -> None:
        await c.store.set_attribute(NodeAttribute("n1", "master-first", "100"))

    async with Nodes(c, ["n1", "n2"], before_answer=score_changes).answering():
        await c.cycle()
    assert (await c.assignment("first")).placements
    assert not (await c.assignment("second")).placements


async def test_it_writes_the_pruned_assignment() -> None:
    c = await stale_placement_on_fenced_node()
    async with Nodes(c, ["n2"]).answering():
        await c.cycle()
    assert (await c.assignment("vip")).placements == (Placement("n2"),)


async def test_it_records_the_failover_from_the_lost_node() -> None:
    c = await two_nodes_one_lost()
    async with Nodes(c, ["n2"]).answering():
        await c.cycle()
    events = await EventLog(c.coord, KEYS, "test").read()
    started = [e for e in events if isinstance(e, FailoverStarted)]
    finished = [e for e in events if isinstance(e, FailoverFinished)]
    assert [(e.resource, e.from_node) for e in started] == [("vip", "n1")]
    assert [(e.resource, e.from_node, e.to_node) for e in finished] == [("vip", "n1", "n2")]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (KEYS.assignment("vip"), b'{"placements": [["n1"'),
        (KEYS.instance_status("n2", "web", 0), b"[]"),
        (KEYS.failcount("n2", "vip"), b'{"count": "x"}'),
        (KEYS.node_flag("n2"), b"null"),
        (KEYS.target_role("vip"), b"paused"),
    ],
    ids=["assignment", "status", "fail count", "node flags", "target role"],
)
async def test_a_torn_record_does_not_keep_the_controller_from_recovering(
    key: str, value: bytes
) -> None:
    # Rule 5: raised, it ended this controller's term, and the next one's, on every node.
    c = await two_nodes_one_lost()
    await c.coord.put(key, value)
    async with Nodes(c, ["n2"]).answering():
        await c.cycle()
    assert Placement("n2") in (await c.assignment("vip")).placements


async def test_it_reports_its_scheduler_runs_and_the_failover_to_its_observer() -> None:
    observations = Observations()
    c = await two_nodes_one_lost(observations)
    async with Nodes(c, ["n2"]).answering():
        await c.cycle()
    assert observations.failovers == {"vip": 1}
    assert observations.failover_duration.count == 1
    assert observations.scheduler_run.count >= 1


async def test_a_new_controller_reports_a_node_the_log_last_saw_join_as_lost() -> None:
    # The controller that saw n1 join died with it, so it never wrote n1's loss.
    c = await two_nodes_one_lost()
    await EventLog(c.coord, KEYS, "n1").append(NodeJoined(ts=time.time(), node="n1"))
    await EventLog(c.coord, KEYS, "n1").append(NodeJoined(ts=time.time(), node="n2"))
    async with Nodes(c, ["n2"]).answering():
        await c.cycle()
    events = await EventLog(c.coord, KEYS, "test").read()
    assert [e.node for e in events if isinstance(e, NodeLost)] == ["n1"]


async def test_an_event_it_cannot_read_does_not_keep_a_new_controller_from_recovering() -> None:
    # Rule 5: its first look reads the history; a ConfigError there ended its term.
    c = await two_nodes_one_lost()
    await EventLog(c.coord, KEYS, "n1").append(NodeJoined(ts=time.time(), node="n1"))
    await c.coord.put(f"{KEYS.events}{int(time.time() * 1e6):016d}-foreign-0", b"\xff")
    async with Nodes(c, ["n2"]).answering():
        await c.cycle()
    assert Placement("n2") in (await c.assignment("vip")).placements
    events = await EventLog(c.coord, KEYS, "test").read()
    assert [e.node for e in events if isinstance(e, NodeLost)] == ["n1"]


class HeldLog(EventLog):
    """An event log whose `NodeLost` appends (``appends``) or whose reads (a new
    controller's history) wait until ``release`` is set."""

    def __init__(self, coord: LocalCoordinator, *, appends: bool, reads: bool) -> None:
        super().__init__(coord, KEYS, "n2")
        self.release = asyncio.Event()
        self._appends, self._reads = appends, reads

    async def append(self, event: Event) -> int:
        if self._appends and isinstance(event, NodeLost):
            await self.release.wait()
        return await super().append(event)

    async def read(self) -> list[Event]:
        if self._reads:
            await self.release.wait()
        return await super().read()


async def recover_while_held(c: Cluster, events: HeldLog) -> None:
    """Run a cycle with ``events`` held back: the start on n2 must be written meanwhile (n1's
    placement goes in a later wave, once nothing runs there), the cycle not finished."""
    c.controller._events = events
    async with Nodes(c, ["n2"]).answering():
        since = await c.coord.revision() + 1
        cycle = asyncio.create_task(c.cycle())
        await c.written("vip", (Placement("n1"), Placement("n2")), since)
        assert not cycle.done()
        events.release.set()
        await cycle


async def test_a_lost_node_s_recovery_does_not_wait_for_its_loss_event_to_commit() -> None:
    c = await two_nodes_one_lost()
    await EventLog(c.coord, KEYS, "n1").append(NodeJoined(ts=time.time(), node="n1"))
    await EventLog(c.coord, KEYS, "n1").append(NodeJoined(ts=time.time(), node="n2"))
    await recover_while_held(c, HeldLog(c.coord, appends=True, reads=False))
    written = await EventLog(c.coord, KEYS, "test").read()
    assert [e.node for e in written if isinstance(e, NodeLost)] == ["n1"]


async def test_a_new_controller_s_first_recovery_does_not_wait_for_the_event_history() -> None:
    c = await two_nodes_one_lost()
    await EventLog(c.coord, KEYS, "n1").append(NodeJoined(ts=time.time() - 10, node="n1"))
    await EventLog(c.coord, KEYS, "n1").append(NodeLost(ts=time.time() - 2, node="n1"))
    # The failover's end waits for the history: it is timed from the loss recorded there.
    await recover_while_held(c, HeldLog(c.coord, appends=False, reads=True))
    written = await EventLog(c.coord, KEYS, "test").read()
    [finished] = [e for e in written if isinstance(e, FailoverFinished)]
    assert finished.duration >= 2.0


async def test_a_new_controller_times_a_failover_from_the_loss_an_earlier_one_recorded() -> None:
    # The controller that wrote n1's loss was deposed before vip had moved.
    observations = Observations()
    c = await two_nodes_one_lost(observations)
    log = EventLog(c.coord, KEYS, "n2")
    await log.append(NodeJoined(ts=time.time() - 10, node="n1"))
    await log.append(NodeLost(ts=time.time() - 2, node="n1"))
    async with Nodes(c, ["n2"]).answering():
        await c.cycle()
    events = await EventLog(c.coord, KEYS, "test").read()
    [finished] = [e for e in events if isinstance(e, FailoverFinished)]
    assert finished.duration >= 2.0


async def test_a_new_controller_does_not_report_a_loss_the_log_already_holds() -> None:
    c = await two_nodes_one_lost()
    log = EventLog(c.coord, KEYS, "n2")
    await log.append(NodeJoined(ts=time.time(), node="n1"))
    await log.append(NodeLost(ts=time.time(), node="n1"))
    async with Nodes(c, ["n2"]).answering():
        await c.cycle()
    events = await EventLog(c.coord, KEYS, "test").read()
    assert [e.node for e in events if isinstance(e, NodeLost)] == ["n1"]


async def test_a_primary_that_failed_under_on_fail_demote_is_demoted_in_place() -> None:
    """n1's promote was refused (reported demotable): the controller writes n1 back as a
    replica, then promotes n2; no write takes n1's placement away (no stop, no restart)."""
    body = (
        TWO_NODES
        + resource("db")
        + 'on_fail = "demote"\n[clones.dbs]\nresource = "db"\npromotable = true\n'
    )
    c = await cluster(spec_of(body), ["n1", "n2"])
    placed = (Placement("n1", "promoted"), Placement("n2"))
    await c.coord.put(KEYS.assignment("db"), encode_assignment(Assignment("db", placed)))
    since = await c.coord.revision() + 1
    await c.store.report(InstanceStatus("db", "n2", 0, "started", 1, time.time()))
    failed = InstanceStatus("db", "n1", 0, "failed", 1, time.time(), "promote", 1, demotable=True)
    await c.store.report(failed)
    await c.store.record_failure("n1", "db", time.time())
    async with Nodes(c, ["n1", "n2"]).answering():
        await c.cycle()
    final = await c.assignment("db")
    assert final.placements == (Placement("n1"), Placement("n2", "promoted"))
    writes: list[Assignment] = []
    changes = c.coord.watch(KEYS.assignment("db"), start_revision=since)
    async with contextlib.aclosing(changes) as events:
        async for event in events:
            writes.append(decode_assignment(event.kv.value, "db", event.kv.mod_revision))
            if event.kv.mod_revision >= final.epoch:
                break
    assert [w.placements for w in writes] == [
        (Placement("n1"), Placement("n2")),  # the demote, then the promote
        (Placement("n1"), Placement("n2", "promoted")),
    ]
