"""`NodeChanges`: the steps of node add/remove/replace on the real key space (no Raft), with a
fake voter group that records the membership calls; crashes are exceptions between steps."""

from __future__ import annotations

import asyncio
import time

import pytest

from hakeeper.coord.base import ChangeInProgress, Members
from hakeeper.errors import ConfigError, EngineMismatch, NoQuorum
from hakeeper.model.node_change import NodeChange
from hakeeper.model.records import InstanceStatus
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.node_changes import ChangeLimits, NodeChanges
from hakeeper.runtime.store import ClusterStore
from tests.fakes import LocalCoordinator

KEYS = KeySpace("c1")
BASE = """\
[cluster]
name = "c1"
fencing = false

[nodes.n1]
address = "10.0.0.1"
[nodes.n2]
address = "10.0.0.2"
[nodes.n3]
address = "10.0.0.3"

[resources.svc]
agent = "process"
params = { command = "/bin/sleep 1000" }
"""
LIMITS = ChangeLimits(drain=5.0, join=5.0, gone=0.5, poll=0.01)


class FakeGroup:
    """The voters of a Raft group; ``fail_adds`` add calls raise NoQuorum first."""

    def __init__(self, voters: list[str], fail_adds: int = 0) -> None:
        self.voters = list(voters)
        self.retired: list[str] = []
        self.calls: list[tuple[str, str]] = []
        self.fail_adds = fail_adds
        self.caught_up: list[str] = []
        self.pending: tuple[str, str] | None = None
        self.pending_until: float | None = None

    async def members(self, timeout: float = 10.0) -> Members:
        return Members(
            tuple(self.voters), 1, tuple(self.retired), self.pending, self.pending_until,
            tuple(self.caught_up),
        )  # fmt: skip

    async def add_member(self, address: str, timeout: float = 60.0) -> Members:
        self.calls.append(("add", address))
        if self.fail_adds:
            self.fail_adds -= 1
            raise NoQuorum("the learner did not catch up in time")
        self.voters.append(address)
        return await self.members()

    async def remove_member(self, address: str, timeout: float = 60.0) -> Members:
        self.calls.append(("remove", address))
        self.voters.remove(address)
        self.retired.append(address)
        return await self.members()

    async def is_retired(self, timeout: float = 10.0) -> bool:
        return False


@pytest.fixture
def coord() -> LocalCoordinator:
    return LocalCoordinator()


@pytest.fixture
def store(coord: LocalCoordinator) -> ClusterStore:
    return ClusterStore(coord, KEYS)


@pytest.fixture
def group() -> FakeGroup:
    return FakeGroup(["10.0.0.1:7480", "10.0.0.2:7480", "10.0.0.3:7480"])


def runner(store: ClusterStore, group: FakeGroup | None, **kw: bool) -> NodeChanges:
    return NodeChanges(store, group, BASE, limits=LIMITS, **kw)


async def online(coord: LocalCoordinator, node: str) -> None:
    lease = await coord.grant(30.0)
    await coord.put(KEYS.member(node), b"{}", lease)


async def came_online_later(coord: LocalCoordinator, node: str) -> None:
    await asyncio.sleep(0.05)
    await online(coord, node)


def add_n4() -> NodeChange:
    return NodeChange("add", "n4", "10.0.0.4:7480", "configure", 0.0)


def remove(node: str) -> NodeChange:
    return NodeChange("remove", node, f"10.0.0.{node[1]}:7480", "check_fenced", 0.0)


async def stored_text(store: ClusterStore) -> str:
    text = await store.stored_config()
    assert text is not None
    return text


async def test_add_stores_the_file_with_the_node_makes_it_a_voter_and_waits_until_it_is_online(
    store: ClusterStore, coord: LocalCoordinator, group: FakeGroup
) -> None:
    changes = runner(store, group)
    joining = asyncio.create_task(came_online_later(coord, "n4"))
    await changes.run(await changes.begin(add_n4()))
    await joining
    assert '[nodes.n4]\naddress = "10.0.0.4"\nraft_port = 7480' in await stored_text(store)
    assert group.calls == [("add", "10.0.0.4:7480")]
    assert await changes.in_flight() is None


async def test_an_add_interrupted_at_the_voter_step_resumes_there_when_run_again(
    store: ClusterStore, coord: LocalCoordinator
) -> None:
    group = FakeGroup(["10.0.0.1:7480"], fail_adds=1)
    first = runner(store, group)
    with pytest.raises(NoQuorum):
        await first.run(await first.begin(add_n4()))
    recorded = await first.in_flight()
    assert recorded is not None
    assert recorded.step == "add_voter"
    config_revision = (await store.config_record()).revision  # type: ignore[union-attr]
    again = runner(store, group)
    await online(coord, "n4")
    await again.run(await again.begin(add_n4()))
    assert group.calls == [("add", "10.0.0.4:7480")] * 2
    assert (await store.config_record()).revision == config_revision  # type: ignore[union-attr]
    assert await again.in_flight() is None


async def test_a_second_change_while_one_is_recorded_is_refused(
    store: ClusterStore, group: FakeGroup
) -> None:
    changes = runner(store, group)
    await changes.begin(add_n4())
    with pytest.raises(ChangeInProgress, match="add n4 is in flight"):
        await changes.begin(remove("n2"))


async def test_removing_a_down_node_that_is_not_fenced_is_refused_and_changes_nothing(
    store: ClusterStore, group: FakeGroup
) -> None:
    await store.report(InstanceStatus("svc", "n3", 0, "started", epoch=1, ts=0.0))
    changes = runner(store, group)
    with pytest.raises(ConfigError, match="--confirm-off"):
        await changes.run(await changes.begin(remove("n3")))
    assert group.calls == []
    assert not (await store.node_flags("n3")).standby


async def test_confirm_off_marks_a_down_node_fenced_and_removes_it(
    store: ClusterStore, group: FakeGroup
) -> None:
    await store.report(InstanceStatus("svc", "n3", 0, "started", epoch=1, ts=0.0))
    changes = runner(store, group, confirm_off=True)
    await changes.run(await changes.begin(remove("n3")))
    assert group.calls == [("remove", "10.0.0.3:7480")]
    assert "[nodes.n3]" not in await stored_text(store)
    assert (await store.live_instances()).statuses == ()


async def test_remove_puts_the_node_in_standby_and_waits_until_nothing_runs_there(
    store: ClusterStore, coord: LocalCoordinator, group: FakeGroup
) -> None:
    await online(coord, "n2")
    await store.report(InstanceStatus("svc", "n2", 0, "started", epoch=1, ts=0.0))
    changes = runner(store, group)
    removing = asyncio.create_task(changes.run(await changes.begin(remove("n2"))))
    for _ in range(200):
        if (await store.node_flags("n2")).standby:
            break
        await asyncio.sleep(0.01)
    assert (await store.node_flags("n2")).standby
    await asyncio.sleep(0.05)
    assert group.calls == []  # still draining: the voter stays until nothing runs there
    await store.report(InstanceStatus("svc", "n2", 0, "stopped", epoch=1, ts=1.0))
    await asyncio.wait_for(removing, 5.0)
    assert group.calls == [("remove", "10.0.0.2:7480")]


async def test_replace_retires_the_old_voter_before_the_new_one_counts(
    store: ClusterStore, coord: LocalCoordinator, group: FakeGroup
) -> None:
    changes = runner(store, group, confirm_off=True)
    change = NodeChange(
        "replace", "n4", "10.0.0.4:7480", "check_fenced", 0.0, "n3", "10.0.0.3:7480"
    )
    await online(coord, "n4")
    await changes.run(await changes.begin(change))
    assert group.calls == [("remove", "10.0.0.3:7480"), ("add", "10.0.0.4:7480")]
    text = await stored_text(store)
    assert "[nodes.n3]" not in text
    assert "[nodes.n4]" in text


async def test_a_retired_address_is_never_added_again(
    store: ClusterStore, coord: LocalCoordinator, group: FakeGroup
) -> None:
    group.retired.append("10.0.0.4:7480")
    changes = runner(store, group)
    with pytest.raises(EngineMismatch, match="another address"):
        await changes.run(await changes.begin(add_n4()))


async def test_on_etcd_an_add_is_config_plus_start(
    store: ClusterStore, coord: LocalCoordinator
) -> None:
    changes = runner(store, None)
    await online(coord, "n4")
    await changes.run(await changes.begin(add_n4()))
    assert "[nodes.n4]" in await stored_text(store)


async def never_joined_add(store: ClusterStore, group: FakeGroup) -> NodeChanges:
    """An add of n4 that timed out waiting for n4's daemon: the file names n4, the record
    stays at add_voter (n4's machine never started)."""
    group.fail_adds = 1
    changes = runner(store, group)
    with pytest.raises(NoQuorum, match="`hakeeper node remove n4`"):
        await changes.run(await changes.begin(add_n4()))
    return changes


async def test_an_add_whose_node_never_joined_is_undone_without_fencing_it(
    store: ClusterStore, coord: LocalCoordinator, group: FakeGroup
) -> None:
    changes = await never_joined_add(store, group)
    await changes.undo_add(add_n4())
    assert "[nodes.n4]" not in await stored_text(store)
    assert await changes.in_flight() is None
    assert await coord.get(KEYS.fenced("n4")) is None
    assert group.calls == [("add", "10.0.0.4:7480")]  # no removal: n4 never voted


async def test_an_add_whose_node_has_joined_is_not_undone(
    store: ClusterStore, coord: LocalCoordinator, group: FakeGroup
) -> None:
    changes = await never_joined_add(store, group)
    group.caught_up.append("10.0.0.4:7480")
    with pytest.raises(ChangeInProgress, match="learner caught up"):
        await changes.undo_add(add_n4())
    group.caught_up.clear()
    await online(coord, "n4")
    with pytest.raises(ChangeInProgress, match="member lease"):
        await changes.undo_add(add_n4())
    assert "[nodes.n4]" in await stored_text(store)
    assert await changes.in_flight() is not None


async def test_an_add_whose_run_may_still_wait_for_the_node_is_not_undone(
    store: ClusterStore, group: FakeGroup
) -> None:
    changes = await never_joined_add(store, group)
    group.pending, group.pending_until = ("add", "10.0.0.4:7480"), time.time() + 60.0
    with pytest.raises(ChangeInProgress, match="stop that `hakeeper node add`"):
        await changes.undo_add(add_n4())
    group.pending_until = time.time() - 600.0  # its run gave up long ago
    await changes.undo_add(add_n4())
    assert await changes.in_flight() is None
