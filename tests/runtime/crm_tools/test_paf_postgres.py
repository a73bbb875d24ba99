"""Real PostgreSQL 15 under PAF's ``pgsqlms``, unchanged, on a three-node loopback cluster.

The lab (benchmarks/paf_lab.py, shared with benchmarks/postgres_failover.py): each node's
daemon sees its own PostgreSQL at one shared path, standbys stream from whichever instance
accepts writes (libpq's multi-host ``target_session_attrs=read-write``), one synchronous
standby (``ANY 1``), fencing through the lab's power-fence device.

One cluster for the module, in order, while one writer commits rows throughout and logs
every acknowledged commit with its node, timeline and LSN:

1. the first promotion;
2. a switchover with ``hakeeper resource move``: the old primary demotes cleanly and follows;
3. one standby made to lag for real, then the primary's node killed: the advanced standby is
   promoted, never the lagging one, which catches up once its WAL source is back;
4. the crashed primary's node back: PAF keeps it out; rebuilt from a base backup, it
   rejoins as a standby;
5. the timelines' own history and the writer's log so far: one writer at a time;
6. ``kill -9`` of the primary's postmaster alone (node and agent up): what PAF does under
   Pacemaker (demote and stop fail on a crashed primary, so the node is fenced), the
   standby promoted, and the history checked again.

After every fault every acknowledged row is on the new primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from benchmarks.paf_lab import (
    BIN,
    NODES,
    PAF,
    PafCluster,
    Writer,
    build_lab,
    one_primary_two_standbys,
    postmaster_pid,
    psql,
    read_histories,
    rebuild_standby,
    remove_postgres,
    roles,
    single_writer_problems,
)

from hakeeper.runtime.observed import Observed
from tests.conftest import require_binary, require_file

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

TIMEOUT = 180.0
CLONE = "pgsql-ha"
Lab = tuple[PafCluster, int]


async def until(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(subprocess.CalledProcessError):
            if await asyncio.to_thread(check):
                return
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def checked_lab() -> Lab:
    for program in ("initdb", "pg_ctl", "pg_basebackup", "psql"):
        require_binary(str(BIN / program))
    require_file(PAF)
    # The "default" timing profile: six helpers load this machine, and the "fast" profile's
    # one-second member lease lapses under that load (a self-fence mid-switchover).
    # on_fail = "fence": a failed primary's node is fenced at once. With the default, PAF's
    # refused stop of a crashed primary fences it too (as Pacemaker fences a failed stop), a
    # step later: one green run of this module took 240 s that way instead of ~170-210 s.
    return build_lab(synchronous=True, fence_device=True, profile="default", on_fail="fence")


def primary(observed: Observed) -> str:
    return next(n for n, r in roles(observed).items() if r == "promoted")


def hakeeper(lab: PafCluster, *args: str) -> str:
    """The operator's command line, against the lab's cluster file."""
    cli = Path(sys.executable).parent / "hakeeper"
    done = subprocess.run(
        [str(cli), *args, "--config", str(lab.config_path)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, f"hakeeper {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def scored(observed: Observed, node: str) -> int:
    return observed.state.promotion_scores.get("pgsqld", {}).get(node, -1)


class Roles:
    """Every role map the cluster showed while a fault played out (``wait_for`` samples)."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []

    def record(self, observed: Observed) -> Observed:
        self.seen.append(roles(observed))
        return observed

    def promoted_ever(self) -> set[str]:
        return {n for r in self.seen for n, role in r.items() if role == "promoted"}

    def at_most_one_primary(self) -> bool:
        return all(list(r.values()).count("promoted") <= 1 for r in self.seen)


async def every_acknowledged_row_present(lab: PafCluster, port: int, writer: Writer) -> str:
    """Once a write started now is acknowledged, every row acknowledged so far is on the
    primary that took it; returns that primary."""
    now = time.monotonic()
    await until("a write acknowledged on the new primary", lambda: writer.acked_after(now))
    acked = list(writer.acked)
    node = acked[-1].node
    present = {int(x) for x in psql(lab.address[node], port, "SELECT i FROM bench").split()}
    missing = [a.i for a in acked if a.i not in present]
    assert not missing, f"acknowledged rows missing on {node}: {missing}"
    return node


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def paf() -> AsyncIterator[Lab]:
    lab, port = await asyncio.to_thread(checked_lab)
    try:
        await lab.start()
        yield lab, port
    finally:
        await lab.close()
        await asyncio.to_thread(remove_postgres, lab.base_dir)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def writer(paf: Lab) -> AsyncIterator[Writer]:
    """Commits rows into ``bench`` from the first primary on, for the whole module."""
    lab, port = paf
    first = await lab.wait_for("one primary, two standbys", one_primary_two_standbys, TIMEOUT)
    psql(lab.address[primary(first)], port, "CREATE TABLE bench (i int PRIMARY KEY)")
    running = Writer(port)
    running.start()
    try:
        yield running
    finally:
        await asyncio.to_thread(running.stop)


async def test_paf_promotes_one_primary_and_both_standbys_stream_from_it(
    paf: Lab, writer: Writer
) -> None:
    """The first promotion: one primary, two standbys streaming, both scored by PAF."""
    lab, port = paf
    first = await lab.wait_for("one primary, two standbys", one_primary_two_standbys, TIMEOUT)
    address = lab.address[primary(first)]
    psql(address, port, "CREATE TABLE t (i int PRIMARY KEY)")
    for i in range(50):
        await asyncio.to_thread(psql, address, port, f"INSERT INTO t VALUES ({i})")
    # Every standby has replayed the rows (no commit can be lost).
    expected = psql(address, port, "SELECT pg_current_wal_lsn()")
    standbys = [n for n, r in roles(first).items() if r == "started"]
    for node in standbys:
        sql = f"SELECT pg_last_wal_replay_lsn() >= '{expected}'"
        await until(f"{node} replayed", lambda n=node, q=sql: psql(lab.address[n], port, q) == "t")
    # ... and the primary's PAF monitor has seen both streaming since: it marks a standby it
    # does not see in pg_stat_replication with -1000 ("not connected"), which neither
    # Pacemaker nor hakeeper promotes.
    await lab.wait_for(
        "the primary's monitor saw both standbys streaming",
        lambda o: all(scored(o, n) > 0 for n in standbys),
        TIMEOUT,
    )
    assert await every_acknowledged_row_present(lab, port, writer) == primary(first)


async def test_resource_move_switches_the_primary_over_and_the_old_one_follows(
    paf: Lab, writer: Writer
) -> None:
    """``hakeeper resource move pgsql-ha NODE`` (Pacemaker: ``crm_resource --move
    --promoted``): PAF's switchover demotes the primary cleanly (a fast shutdown, restarted
    as a standby), checks in pre-promote that the target received its shutdown checkpoint,
    and promotes the target; the old primary streams from it."""
    lab, port = paf
    before = await lab.observe()
    old = primary(before)
    target = min(n for n, r in roles(before).items() if r == "started")
    moved = await asyncio.to_thread(hakeeper, lab, "resource", "move", CLONE, target)
    print(f"\nhakeeper resource move {CLONE} {target}:\n{moved}")
    watch = Roles()
    await lab.wait_for(
        f"{target} promoted, {old} a standby",
        lambda o: (
            (r := roles(watch.record(o))).get(target) == "promoted" and r.get(old) == "started"
        ),
        TIMEOUT,
    )
    assert watch.at_most_one_primary(), watch.seen
    cleared = await asyncio.to_thread(hakeeper, lab, "resource", "clear", CLONE, target)
    assert "cleared 1 move/ban" in cleared, cleared
    assert await every_acknowledged_row_present(lab, port, writer) == target
    sql = f"SELECT count(*) FROM pg_stat_replication WHERE application_name = '{old}'"
    await until(f"{old} streams from {target}", lambda: psql(lab.address[target], port, sql) == "1")
    # Cleared, the primary stays where it is (stickiness): no second switchover.
    await asyncio.sleep(5)
    assert primary(await lab.observe()) == target


async def test_a_lagging_standby_is_never_promoted_over_an_advanced_one(
    paf: Lab, writer: Writer
) -> None:
    """One standby's WAL source pointed at nothing (its receiver stops; ``application_name``
    kept, as PAF's validation requires), rows committed past it, the primary's node killed:
    the advanced standby is promoted and the lagging one never is; once its source is back
    it follows the new primary's timeline and catches up."""
    lab, port = paf
    now = await lab.observe()
    old = primary(now)
    advanced, lagging = sorted(n for n, r in roles(now).items() if r == "started")
    source = psql(lab.address[lagging], port, "SHOW primary_conninfo")
    dead = f"host=127.0.0.1 port=1 user=postgres application_name={lagging}"
    psql(lab.address[lagging], port, f"ALTER SYSTEM SET primary_conninfo = '{dead}'")
    psql(lab.address[lagging], port, "SELECT pg_reload_conf()")
    gone = f"SELECT count(*) FROM pg_stat_replication WHERE application_name = '{lagging}'"
    await until(f"{lagging} disconnected", lambda: psql(lab.address[old], port, gone) == "0")
    # PAF's monitor on the primary marks the standby it no longer sees with -1000.
    await lab.wait_for(f"{lagging} scored < 0", lambda o: scored(o, lagging) < 0, TIMEOUT)
    count = len(writer.acked)
    await until("20 more rows acknowledged", lambda: len(writer.acked) >= count + 20)
    ahead = psql(lab.address[old], port, "SELECT pg_current_wal_lsn()")
    behind = f"SELECT pg_last_wal_receive_lsn() < '{ahead}'"
    assert psql(lab.address[lagging], port, behind) == "t", "the lagging standby is not behind"

    os.kill(postmaster_pid(lab.data_dir(old)), 9)
    lab.crash(old)
    watch = Roles()
    await lab.wait_for(
        f"{advanced} promoted",
        lambda o: roles(watch.record(o)).get(advanced) == "promoted",
        TIMEOUT,
    )
    assert lagging not in watch.promoted_ever(), watch.seen
    assert watch.at_most_one_primary(), watch.seen
    assert psql(lab.address[advanced], port, "SELECT count(*) FROM t") == "50"

    # Its source back, the lagging standby follows the new timeline and catches up. Until
    # then the new primary has no synchronous standby, so no commit is acknowledged.
    psql(lab.address[lagging], port, f"ALTER SYSTEM SET primary_conninfo = '{source}'")
    psql(lab.address[lagging], port, "SELECT pg_reload_conf()")
    assert await every_acknowledged_row_present(lab, port, writer) == advanced
    psql(lab.address[advanced], port, "INSERT INTO t VALUES (50)")
    rows = "SELECT count(*) FROM t"
    await until(f"{lagging} caught up", lambda: psql(lab.address[lagging], port, rows) == "51")
    await lab.wait_for(
        f"{advanced}'s monitor scored {lagging}",
        lambda o: roles(watch.record(o)).get(lagging) == "started" and scored(o, lagging) > 0,
        TIMEOUT,
    )
    assert lagging not in watch.promoted_ever(), watch.seen


async def test_the_crashed_primary_s_node_comes_back_and_paf_keeps_it_out(paf: Lab) -> None:
    """After the failover above, the old primary's node returns. Its PostgreSQL was killed
    as a primary (controldata "in production"), so PAF refuses it, as it does under
    Pacemaker: it may hold WAL the new timeline lacks, and needs pg_rewind or a new base
    backup first. Its failure fences it again (on_fail = "fence"; by default its failed stop
    would). The new primary stays the only one throughout."""
    lab, port = paf
    now = await lab.observe()
    old = next(n for n in NODES if now.state.node(n).status == "lost")
    new = primary(now)
    revived = time.monotonic()
    await lab.revive(old)
    seen: list[dict[str, str]] = []
    reasons: list[str] = []

    def refused_and_fenced(o: Observed) -> bool:
        seen.append(roles(o))
        mine = next((s for s in o.statuses if s.resource == "pgsqld" and s.node == old), None)
        if old in o.members and mine is not None and mine.role == "failed":
            reasons.append(f"{mine.op}: {mine.reason}")
        return bool(reasons) and lab.down_since(old, revived) is not None

    await lab.wait_for(f"PAF refused {old}, then {old} fenced", refused_and_fenced, TIMEOUT)
    print(f"\n{old} after its return: failed ({reasons[0]}), then fenced")
    assert "probably crashed" in reasons[0], reasons
    assert all(r.get(new) == "promoted" for r in seen), seen
    assert all(list(r.values()).count("promoted") == 1 for r in seen), seen
    assert psql(lab.address[new], port, "SELECT count(*) FROM t") == "51"


async def test_the_old_primary_rebuilt_from_a_base_backup_rejoins_as_a_standby(paf: Lab) -> None:
    """The operator's way back for the refused node (PAF's documentation: pg_rewind or a new
    base backup): rebuilt from the primary, its fail count cleaned up, its node started, it
    streams from the primary and PAF scores it."""
    lab, port = paf
    now = await lab.observe()
    old = next(n for n in NODES if roles(now).get(n) not in ("promoted", "started"))
    new = primary(now)
    await asyncio.to_thread(
        rebuild_standby, lab.base_dir, old, port, lab.address[new], synchronous=True
    )
    await asyncio.to_thread(hakeeper, lab, "resource", "cleanup", CLONE, old)
    await lab.revive(old)
    await lab.wait_for(
        f"{old} a standby scored by {new}",
        lambda o: roles(o).get(old) == "started" and scored(o, old) > 0,
        TIMEOUT,
    )
    rows = "SELECT count(*) FROM t"
    await until(f"{old} has every row", lambda: psql(lab.address[old], port, rows) == "51")
    assert primary(await lab.observe()) == new


async def test_one_node_accepted_writes_at_a_time_by_the_timeline_history(
    paf: Lab, writer: Writer
) -> None:
    """The databases' own record: every ``.history`` file on the three instances forms one
    chain, every acknowledged commit lies on it before its timeline's fork point, and the
    writer never saw two nodes acknowledge in interleaved intervals."""
    lab, _ = paf
    acks = list(writer.acked)
    histories = read_histories([lab.data_dir(n) for n in NODES])
    problems = single_writer_problems(histories, acks)
    by_timeline: dict[int, tuple[str, int]] = {}
    for a in acks:
        node, count = by_timeline.get(a.timeline, (a.node, 0))
        by_timeline[a.timeline] = (node, count + 1)
    print(f"\ntimelines {sorted(histories)}; acknowledged rows per timeline: {by_timeline}")
    assert not problems, problems
    assert len(by_timeline) >= 3, by_timeline  # the switchover, the node crash


async def test_kill_9_of_the_primary_s_postmaster_fences_its_node_and_promotes_the_standby(
    paf: Lab, writer: Writer
) -> None:
    """Only the postmaster dies; the node and its agent stay up. PAF's monitor reports a
    failed primary (controldata "in production", nothing listening). Its demote and its
    stop both refuse a crashed primary; Pacemaker fences the node of that failed stop, and
    so does hakeeper; here on_fail = "fence" fences it at the failure itself. Then the
    standby is promoted."""
    lab, port = paf
    now = await lab.observe()
    old = primary(now)
    standbys = {n for n, r in roles(now).items() if r == "started"}
    assert len(standbys) == 2, now.state
    await lab.wait_for(
        "both standbys scored", lambda o: all(scored(o, n) > 0 for n in standbys), TIMEOUT
    )
    killed = time.monotonic()
    os.kill(postmaster_pid(lab.data_dir(old)), 9)
    watch = Roles()
    after = await lab.wait_for(
        "a standby promoted",
        lambda o: "promoted" in {roles(watch.record(o)).get(n) for n in standbys},
        TIMEOUT,
    )
    standby = primary(after)
    print(f"\nafter kill -9 of {old}'s postmaster: {watch.seen[-1]}, {after.state.node(old)}")
    assert watch.at_most_one_primary(), watch.seen
    assert lab.down_since(old, killed) is not None, f"{old} was not fenced"
    assert await every_acknowledged_row_present(lab, port, writer) == standby
    histories = read_histories([lab.data_dir(n) for n in NODES])
    assert not (problems := single_writer_problems(histories, writer.acked)), problems
