"""The cluster store: the scheduler's snapshot built from raw keys, and one typed method per
thing its callers do."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace

import pytest

from hakeeper.config.loader import spec_from_text
from hakeeper.errors import ConfigError
from hakeeper.model.records import Assignment, FencedMark, InstanceStatus, Placement
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.record_codec import encode_assignment
from hakeeper.runtime.store import ClusterStore
from tests.fakes import LocalCoordinator

KEYS = KeySpace("c1")
SPEC = spec_from_text(
    '[cluster]\nname = "c1"\n[nodes.n1]\n[nodes.n2]\n[resources.db]\nagent = "process"\n'
    'params = { command = "sleep 1" }\n',
    "test",
)


async def store_with_status(node: str, coord: LocalCoordinator | None = None) -> ClusterStore:
    store = ClusterStore(coord or LocalCoordinator(), KEYS)
    await store.report(InstanceStatus("db", node, 0, "started", 5, time.time()))
    return store


async def test_a_node_without_member_key_but_running_statuses_is_lost() -> None:
    store = await store_with_status("n1")
    observed = await store.observe(SPEC, time.time())
    assert observed.state.node("n1").status == "lost"
    assert observed.state.node("n2").status == "offline"


async def test_a_fenced_node_is_down_and_its_statuses_are_not_instances() -> None:
    store = await store_with_status("n1")
    await store.mark_fenced("n1", FencedMark(by="operator", ts=time.time()))
    observed = await store.observe(SPEC, time.time())
    assert observed.state.node("n1").down
    assert observed.state.instances == ()


async def test_running_on_names_live_nodes_only() -> None:
    store = await store_with_status("n1")
    await store.report(InstanceStatus("db", "n2", 0, "stopped", 5, time.time()))
    observed = await store.observe(SPEC, time.time())
    assert observed.running_on("db") == ["n1"]
    await store.mark_fenced("n1", FencedMark(by="operator", ts=time.time()))
    assert (await store.observe(SPEC, time.time())).running_on("db") == []


async def test_a_fenced_node_that_rejoined_is_not_believed_until_it_clears_its_mark() -> None:
    coord = LocalCoordinator()
    store = await store_with_status("n1", coord)
    await store.mark_fenced("n1", FencedMark(by="operator", ts=time.time()))
    lease = await coord.grant(3)
    await coord.put(KEYS.member("n1"), b"{}", lease)
    assert (await store.observe(SPEC, time.time())).state.instances == ()
    await store.rejoined("n1")
    assert len((await store.observe(SPEC, time.time())).state.instances) == 1


async def test_a_leaving_node_counts_as_standby() -> None:
    store = ClusterStore(LocalCoordinator(), KEYS)
    await store.leaving("n2")
    assert (await store.observe(SPEC, time.time())).state.node("n2").standby


async def test_the_snapshot_states_the_assignments_as_written() -> None:
    coord = LocalCoordinator()
    store = await store_with_status("n1", coord)
    db = Assignment("db", (Placement("n1"), Placement("n2", "promoted")))
    revision = await coord.put(KEYS.assignment("db"), encode_assignment(db))
    observed = await store.observe(SPEC, time.time())
    assert observed.state.assignments == (replace(db, epoch=revision),)


async def test_stored_config_bytes_that_are_not_utf8_are_a_config_error() -> None:
    coord = LocalCoordinator()
    store = ClusterStore(coord, KEYS)
    await coord.put(KEYS.config, b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        await store.stored_config()


async def test_a_stored_config_that_does_not_load_is_a_status_warning() -> None:
    coord = LocalCoordinator()
    store = ClusterStore(coord, KEYS)
    revision = await coord.put(KEYS.config, b"x = " + b"[" * 5000 + b"]" * 5000)
    problem = await store.stored_config_problem()
    assert problem is not None
    assert problem.revision == revision
    assert "nests deeper than" in problem.reason
    assert "keeps running its last good config" in problem.warning()


async def test_a_stored_config_that_loads_gives_no_warning() -> None:
    coord = LocalCoordinator()
    store = ClusterStore(coord, KEYS)
    assert await store.stored_config_problem() is None  # none stored yet
    await coord.put(KEYS.config, b'[cluster]\nname = "c1"\n[nodes.n1]\n')
    assert await store.stored_config_problem() is None


async def test_a_guarded_assignment_write_returns_its_epoch() -> None:
    coord = LocalCoordinator()
    store = ClusterStore(coord, KEYS)
    term = (await store.election("n1").campaign(await coord.grant(3))).term
    epoch = await store.write_assignments(term, {"db": Assignment("db", (Placement("n1"),))})
    assert epoch is not None
    assert await store.assignments() == {"db": Assignment("db", (Placement("n1"),), epoch)}


async def test_a_fenced_mark_guarded_by_an_ended_term_is_not_written() -> None:
    coord = LocalCoordinator()
    store = ClusterStore(coord, KEYS)
    term = (await store.election("n1").campaign(await coord.grant(3))).term
    assert await store.mark_fenced("n2", FencedMark("ipmi", 1.0), term=term + 1) is None
    assert await coord.get(KEYS.fenced("n2")) is None
    assert await store.mark_fenced("n2", FencedMark("ipmi", 1.0), term=term) is not None
    assert await coord.get(KEYS.fenced("n2")) is not None


async def test_rejoining_clears_the_fenced_mark_and_the_leaving_mark() -> None:
    coord = LocalCoordinator()
    store = ClusterStore(coord, KEYS)
    await store.mark_fenced("n1", FencedMark("operator", 1.0))
    await store.leaving("n1")
    await store.rejoined("n1")
    assert await coord.range(KEYS.runtime) == []


async def first_assignment_change(store: ClusterStore) -> Assignment:
    async with contextlib.aclosing(store.assignment_changes()) as changes:
        async for assignment in changes:
            return assignment
    raise AssertionError("the watch ended")


async def test_the_assignment_watch_delivers_each_written_assignment_with_its_epoch() -> None:
    coord = LocalCoordinator()
    store = ClusterStore(coord, KEYS)
    term = (await store.election("n1").campaign(await coord.grant(3))).term

    waiting = asyncio.create_task(first_assignment_change(store))
    await asyncio.sleep(0)
    epoch = await store.write_assignments(term, {"db": Assignment("db", (Placement("n1"),))})
    assert await asyncio.wait_for(waiting, 5) == Assignment("db", (Placement("n1"),), epoch)


async def test_the_assignment_watch_passes_over_a_deleted_assignment() -> None:
    coord = LocalCoordinator()
    store = ClusterStore(coord, KEYS)

    await coord.put(KEYS.assignment("old"), encode_assignment(Assignment("old", ())))
    waiting = asyncio.create_task(first_assignment_change(store))
    await asyncio.sleep(0)
    await coord.delete(KEYS.assignment("old"))
    await coord.put(KEYS.assignment("db"), encode_assignment(Assignment("db", ())))
    assert (await asyncio.wait_for(waiting, 5)).resource == "db"


async def test_the_assignment_watch_passes_over_a_torn_assignment() -> None:
    coord = LocalCoordinator()
    store = ClusterStore(coord, KEYS)
    waiting = asyncio.create_task(first_assignment_change(store))
    await asyncio.sleep(0)
    await coord.put(KEYS.assignment("torn"), b'{"placements": [["n1"')
    await coord.put(KEYS.assignment("db"), encode_assignment(Assignment("db", ())))
    assert (await asyncio.wait_for(waiting, 5)).resource == "db"


async def test_a_read_of_the_assignments_leaves_out_a_torn_one() -> None:
    coord = LocalCoordinator()
    store = ClusterStore(coord, KEYS)
    await coord.put(KEYS.assignment("torn"), b'{"placements": 7}')
    await coord.put(KEYS.assignment("db"), encode_assignment(Assignment("db", ())))
    assert list(await store.assignments()) == ["db"]


#: A key of each kind the snapshot decodes, and a torn or foreign value for it.
TORN_RECORDS = {
    "assignment": (KEYS.assignment("db"), b"not json"),
    "status": (KEYS.instance_status("n1", "db", 0), b'{"role": "started"}'),
    "status key": (KEYS.instance_status("n1", "db", 0).replace("#0", "#x"), b"{}"),
    "status role": (
        KEYS.instance_status("n1", "db", 0),
        b'{"role": "banana", "epoch": 1, "ts": 1.0}',
    ),
    "placed role": (KEYS.assignment("db"), b'{"placements": [["n1", "failed", 0]]}'),
    "placed node": (KEYS.assignment("db"), b'{"placements": [[7, "started", 0]]}'),
    "constraint kind": (KEYS.constraint("db", "n1"), b'{"kind": "prefer"}'),
    "fail count": (KEYS.failcount("n1", "db"), b"[]"),
    "constraint": (KEYS.constraint("db", "n1"), b"7"),
    "node flags": (KEYS.node_flag("n1"), b'["standby"]'),
    "target role": (KEYS.target_role("db"), b"\xff"),
    "deep": (KEYS.failcount("n2", "db"), b"[" * 100_000),
}


async def test_a_failure_over_a_torn_fail_count_counts_from_one_and_replaces_it() -> None:
    coord = LocalCoordinator()
    store = ClusterStore(coord, KEYS)
    await coord.put(KEYS.failcount("n1", "db"), b"{torn")
    assert (await store.record_failure("n1", "db", 5.0)).count == 1
    assert (await store.record_failure("n1", "db", 6.0)).count == 2


@pytest.mark.parametrize("kind", sorted(TORN_RECORDS))
async def test_the_snapshot_leaves_out_a_torn_record_and_says_which(kind: str) -> None:
    coord = LocalCoordinator()
    store = await store_with_status("n2", coord)
    key, value = TORN_RECORDS[kind]
    await coord.put(key, value)
    observed = await store.observe(SPEC, time.time())
    assert [kv.key for kv, _ in observed.refused] == [key]
    assert [(s.node, s.resource) for s in observed.statuses] == [("n2", "db")]


async def test_a_config_is_published_only_over_the_revision_it_was_reviewed_against() -> None:
    store = ClusterStore(LocalCoordinator(), KEYS)
    first = await store.publish_first_config("# first")
    assert first is not None
    assert first.raw == b"# first"
    assert await store.publish_first_config("# not over the first") == first
    assert not await store.publish_config("# stale review", base_revision=0)
    assert await store.publish_config("# reviewed", base_revision=first.revision)
    assert await store.stored_config() == "# reviewed"


async def test_constraints_and_target_roles_read_back_as_written() -> None:
    store = ClusterStore(LocalCoordinator(), KEYS)
    await store.set_constraint("move", "db", "n1")
    await store.set_constraint("ban", "db", "n2")
    assert await store.constraints_of("db") == {"n1": "move", "n2": "ban"}
    assert await store.target_role("db") is None
    await store.set_target_role("db", "stopped")
    assert await store.target_role("db") == "stopped"


async def test_live_instances_skip_a_torn_status() -> None:
    coord = LocalCoordinator()
    store = await store_with_status("n1", coord)
    await coord.put(KEYS.member("n1"), b"{}")
    await coord.put(KEYS.instance_status("n2", "db", 0), b"{torn")
    live = await store.live_instances()
    assert live.members == {"n1"}
    assert [(s.node, s.resource) for s in live.statuses] == [("n1", "db")]
    assert live.revision > 0


async def test_a_torn_record_is_logged_once_not_at_every_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    coord = LocalCoordinator()
    store = ClusterStore(coord, KEYS)
    await coord.put(KEYS.node_flag("n1"), b"{torn")
    for _ in range(3):
        await store.observe(SPEC, time.time())
    assert len([r for r in caplog.records if "event=record_refused" in r.message]) == 1


async def test_a_new_torn_write_of_the_same_key_is_logged_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    coord = LocalCoordinator()
    store = ClusterStore(coord, KEYS)
    for _ in range(2):
        await coord.put(KEYS.node_flag("n1"), b"{torn")
        await store.observe(SPEC, time.time())
    assert len([r for r in caplog.records if "event=record_refused" in r.message]) == 2
