"""Grow, shrink and replace the nodes of a running cluster, one resumable step at a time.

`NodeChanges` runs the steps of a `NodeChange` (`hakeeper.model.node_change.STEPS`):

* add: the cluster file gains the node (the stored config, as ``config apply`` writes it);
  the new node's daemon (``hakeeper agent --join``) joins the Raft group as a learner and
  `add_member` makes it a voter once it has caught up; it counts once it has probed and
  holds its member lease (then the scheduler may place on it).
* remove: a node that is down must be fenced first (rule 2: or the operator confirms it is
  off); its resources move away (standby) until nothing runs there; it leaves the Raft group
  (its address retired for good, so its old data can never vote again); its daemon notices
  and stops; the cluster file loses it and its run-time records are forgotten.
* replace: the old node is retired as by remove, then the new one added: the group goes
  3 → 2 → 3 and never counts a dead voter in a bigger quorum.

The change is recorded in the store before its first step and at the start of each step
(`hakeeper.runtime.node_change_log`), and every step is idempotent (it checks whether its
work is done first). A run interrupted anywhere — the CLI killed, the controller or the
joining node crashed — is finished by running the same command again: it resumes at the
recorded step. The group's own rule (one Raft membership change at a time) backs the
record's: a second change while one is recorded is refused.

An add whose node never joins (its machine never started) is undone by
``hakeeper node remove NODE`` (`undo_add`), as etcd removes an unstarted learner: the node
never voted, never held a member lease and never ran anything, so it is neither drained nor
fenced; the cluster file loses it and the record is cleared. The add itself never undoes on
a timeout: a machine still being installed joins when it starts, and running the add again
keeps waiting.

On etcd, nodes are etcd clients: the Raft steps are skipped (etcd's members are changed with
its own tools) and a removed node's daemon stops when the config it follows loses it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from hakeeper.config.loader import spec_from_text
from hakeeper.coord.base import ChangeInProgress, MembershipChanges
from hakeeper.coord.raft_membership import ABANDON_GRACE
from hakeeper.errors import ConfigError, CoordError, EngineMismatch, NoQuorum
from hakeeper.model.address import split_address
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.node_change import NodeChange, NodeChangeStep
from hakeeper.model.records import FencedMark, NodeFlags
from hakeeper.model.roles import RUNNING_ROLES
from hakeeper.runtime.node_change_log import NodeChangeLog
from hakeeper.runtime.node_config import with_node, without_node
from hakeeper.runtime.store import ClusterStore

log = logging.getLogger(__name__)

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ChangeLimits:
    """How long each waiting step may take (seconds) and how often it looks."""

    drain: float = 300.0  # until nothing runs on a leaving node
    join: float = 900.0  # until the new node's daemon caught up and holds its member lease
    gone: float = 60.0  # until a removed node's member lease is gone
    poll: float = 0.5


@dataclass(frozen=True, slots=True)
class InForce:
    """The config the cluster runs: its text and the stored revision (0: none stored yet)."""

    text: str
    revision: int

    @property
    def spec(self) -> ClusterSpec:
        return spec_from_text(self.text, "the config in force")


class NodeChanges:
    """Runs membership changes on ``store``; ``members`` is the Raft group's change API
    (None on etcd); ``local_text`` is the cluster file used when none was stored yet.
    ``say`` gets progress lines; ``on_config`` the config in force after each config step."""

    def __init__(
        self,
        store: ClusterStore,
        members: MembershipChanges | None,
        local_text: str,
        *,
        say: Say = lambda line: None,
        on_config: Say = lambda text: None,
        limits: ChangeLimits = ChangeLimits(),
        confirm_off: bool = False,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._log: NodeChangeLog = store.node_changes()
        self._members = members
        self._local_text = local_text
        self._say = say
        self._on_config = on_config
        self._limits = limits
        self._confirm_off = confirm_off
        self._wall = wall

    # --- the change record ----------------------------------------------------------------

    async def in_flight(self) -> NodeChange | None:
        return await self._log.current()

    async def begin(self, change: NodeChange) -> NodeChange:
        """Record ``change``, or pick up the same change a crashed run left at its step;
        `ChangeInProgress` when another change is recorded."""
        for _ in range(3):
            current = await self._log.current()
            if current is None:
                if await self._log.begin(change):
                    log.info("event=node_change_begin change=%r", change.describe())
                    return change
                continue  # another operator started one meanwhile: read it
            if _same(current, change):
                self._say(f"resuming {current.describe()} at step {current.step}")
                log.info("event=node_change_resume change=%r step=%s", current.describe(),
                         current.step)  # fmt: skip
                return current
            raise ChangeInProgress(
                f"{current.describe()} is in flight (step {current.step}): the cluster makes "
                "one membership change at a time; run that command again to finish it"
            )
        raise CoordError("the membership change record kept changing under this command; retry")

    async def run(self, change: NodeChange) -> None:
        """Do every step from the recorded one; the record is gone once all are done."""
        for step in change.steps:
            change = await self._log.advance(change, step)
            log.info("event=node_change_step change=%r step=%s", change.describe(), step)
            await self._step(change, step)
        await self._log.finish()
        log.info("event=node_change_done change=%r", change.describe())
        self._say(f"done: {change.describe()}")

    async def undo_add(self, change: NodeChange) -> None:
        """Roll back ``change``, an add whose node never joined: the cluster file loses the
        node and the record is cleared. Refused (`ChangeInProgress`, nothing changed) once
        the node has joined in any way, or while the add's own run may still be waiting for
        it; every step is idempotent, so an undo interrupted anywhere is run again."""
        if change.kind != "add":
            raise ConfigError(f"{change.describe()} is not an add: only an add is undone")
        joined = await self._joined(change)
        if joined:
            raise ChangeInProgress(
                f"{change.node} has joined ({joined}): finish the add with `hakeeper node add "
                f"{change.node} --address {change.address}`, then remove {change.node}"
            )
        self._say(f"undoing add {change.node}: it never joined (neither drained nor fenced)")
        await self._unconfigure(change.node)
        await self._log.finish()
        log.info("event=node_change_undone change=%r step=%s", change.describe(), change.step)
        self._say(f"done: add {change.node} undone")

    async def _joined(self, change: NodeChange) -> str:
        """How ``change``'s node took part in the cluster ("" when it never did)."""
        if await self._store.is_member(change.node):
            return "it holds a member lease"
        spec = (await self.config_in_force()).spec
        observed = await self._store.observe(spec, self._wall())
        if any(s.node == change.node for s in observed.statuses):
            return "it has reported what it runs"
        if self._members is None:
            return ""
        members = await self._members.members()
        if change.address in members.voters:
            return "it votes"
        if change.address in members.caught_up:
            return "its learner caught up with the group"
        until = members.pending_until or 0.0
        if members.pending == ("add", change.address) and self._wall() < until + ABANDON_GRACE:
            # The add's run may still be waiting for the learner and would make it a voter
            # the moment it catches up, whatever the file says: that run stops first.
            raise ChangeInProgress(
                f"the run of add {change.node} may still be waiting for it (its Raft slot is "
                f"{time.strftime('%H:%M:%S', time.localtime(until + ABANDON_GRACE))}): stop that "
                "`hakeeper node add` (Ctrl-C frees the slot), then run this command again"
            )
        return ""

    async def _step(self, change: NodeChange, step: NodeChangeStep) -> None:
        if step == "check_fenced":
            await self._check_fenced(change.leaving)
        elif step == "drain":
            await self._drain(change.leaving)
        elif step == "remove_voter":
            await self._remove_voter(change.leaving_address)
        elif step == "wait_gone":
            await self._wait_gone(change.leaving)
        elif step == "unconfigure":
            await self._unconfigure(change.leaving)
        elif step == "configure":
            await self._configure(change.node, change.address)
        elif step == "add_voter":
            await self._add_voter(change.node, change.address)
        else:
            await self._wait_online(change.node)

    # --- the steps --------------------------------------------------------------------------

    async def _check_fenced(self, node: str) -> None:
        if await self._store.is_member(node):
            return  # up: it is drained next, and stops when it notices its removal
        spec = (await self.config_in_force()).spec
        observed = await self._store.observe(spec, self._wall())
        if observed.state.node(node).fenced:
            return
        if not self._confirm_off:
            raise ConfigError(
                f"{node} is down and not known to be off: what it ran may still run. Fence "
                f"it first (`hakeeper fence {node}`), or, once you have checked by hand that "
                "it is off, run this command again with --confirm-off"
            )
        await self._store.mark_fenced(node, FencedMark(by="operator", ts=self._wall()))
        self._say(f"{node} confirmed off by the operator")

    async def _drain(self, node: str) -> None:
        flags = await self._store.node_flags(node)
        if not flags.standby:
            await self._store.set_node_flags(node, NodeFlags(standby=True))
            self._say(f"{node}: standby; moving its resources away")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._limits.drain
        while True:
            left = await self._running_on(node)
            if not left:
                return
            if loop.time() > deadline:
                raise NoQuorum(
                    f"{node} still runs {', '.join(left)} after {self._limits.drain:g}s: see "
                    "`hakeeper status`; run this command again to keep waiting"
                )
            await asyncio.sleep(self._limits.poll)

    async def _running_on(self, node: str) -> list[str]:
        """What ``node`` runs or is assigned, unless it is certainly off."""
        spec = (await self.config_in_force()).spec
        observed = await self._store.observe(spec, self._wall())
        if observed.state.node(node).fenced:
            return []
        running = {
            s.resource for s in observed.statuses if s.node == node and s.role in RUNNING_ROLES
        }
        placed = {name for name, a in observed.assignments.items() if a.on(node)}
        return sorted(running | placed)

    async def _remove_voter(self, address: str) -> None:
        if self._members is None:
            return
        members = await self._members.members()
        if address not in members.voters:
            return
        self._say(f"removing the Raft voter {address}")
        await self._retrying("remove", address, self._limits.gone)

    async def _wait_gone(self, node: str) -> None:
        if self._members is None:
            return  # on etcd the daemon stops when its config loses it (next step)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._limits.gone
        while await self._store.is_member(node):
            if loop.time() > deadline:
                self._say(f"note: {node}'s member lease is still there; it expires on its own")
                return
            await asyncio.sleep(self._limits.poll)

    async def _unconfigure(self, node: str) -> None:
        await self._publish(lambda text, spec: None if spec.node(node) is None
                            else without_node(text, node), f"without {node}")  # fmt: skip
        await self._log.forget_node(node)

    async def _configure(self, node: str, address: str) -> None:
        where = split_address(address) if address else None

        def edit(text: str, spec: ClusterSpec) -> str | None:
            if spec.node(node) is not None:
                return None
            if where is None:
                raise ConfigError(f"{node}: an address is needed to add it")
            return with_node(text, node, where)

        await self._publish(edit, f"with {node}")

    async def _add_voter(self, node: str, address: str) -> None:
        if self._members is None:
            return
        members = await self._members.members()
        if address in members.voters:
            return
        if address in members.retired:
            raise EngineMismatch(
                f"{address} was removed from this cluster before and never votes again: add "
                f"{node} under another address (or port)"
            )
        self._say(
            f"waiting for {node}'s daemon (started with --join, a fresh state directory and "
            "the cluster file that names it) to join as a learner and catch up"
        )
        try:
            await self._retrying("add", address, self._limits.join)
        except NoQuorum as exc:
            raise NoQuorum(
                f"{exc}; to keep waiting, run `hakeeper node add {node} --address {address}` "
                f"again; if {node}'s machine will not start, undo the add with "
                f"`hakeeper node remove {node}`"
            ) from None
        self._say(f"{node} ({address}) votes")

    async def _wait_online(self, node: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._limits.join
        while not await self._store.is_member(node):
            if loop.time() > deadline:
                raise NoQuorum(
                    f"{node} has not joined the cluster (no member lease) after "
                    f"{self._limits.join:g}s: check its daemon's log; run this command again "
                    "to keep waiting"
                )
            await asyncio.sleep(self._limits.poll)
        self._say(f"{node} is online: the scheduler may place resources on it")

    # --- machinery ----------------------------------------------------------------------------

    async def config_in_force(self) -> InForce:
        stored = await self._store.config_record()
        if stored is None:
            return InForce(self._local_text, 0)
        return InForce(stored.raw.decode("utf-8"), stored.revision)

    async def _publish(self, edit: Callable[[str, ClusterSpec], str | None], what: str) -> None:
        """Store the edited config in force, unless the edit is done already."""
        for _ in range(5):
            current = await self.config_in_force()
            text = edit(current.text, current.spec)
            if text is None:
                self._on_config(current.text)
                return
            spec_from_text(text, f"the cluster file {what}")  # validated before it is stored
            if await self._store.publish_config(text, current.revision):
                self._say(f"stored the cluster file {what}")
                self._on_config(text)
                return
        raise ChangeInProgress("the stored config kept changing under this command; retry")

    async def _retrying(self, kind: str, address: str, limit: float) -> None:
        """Run a Raft membership change, waiting while the group's slot is taken (a change a
        crashed run left in flight frees it once abandoned), until ``limit``."""
        assert self._members is not None
        change = self._members.add_member if kind == "add" else self._members.remove_member
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while True:
            try:
                await change(address, max(1.0, deadline - loop.time()))
                return
            except ChangeInProgress:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(max(self._limits.poll, 1.0))


def _same(a: NodeChange, b: NodeChange) -> bool:
    return (a.kind, a.node, a.old) == (b.kind, b.node, b.old)
