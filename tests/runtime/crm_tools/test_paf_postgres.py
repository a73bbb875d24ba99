"""Real PostgreSQL 15 under PAF's ``pgsqlms``, unchanged, on a three-node loopback cluster.

The lab (benchmarks/paf_lab.py, shared with benchmarks/postgres_failover.py): each node's
daemon sees its own PostgreSQL at one shared path, standbys stream from whichever instance
accepts writes (libpq's multi-host ``target_session_attrs=read-write``).

One cluster for the module, in order: the first promotion, the primary's node killed and the
best standby promoted, then that node back (PAF keeps its crashed primary out).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
from benchmarks.paf_lab import (
    BIN,
    NODES,
    PAF,
    PafCluster,
    build_lab,
    one_primary_two_standbys,
    psql,
    remove_postgres,
    roles,
)

from hakeeper.runtime.observed import Observed
from tests.conftest import require_binary, require_file

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

TIMEOUT = 180.0


async def until(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(subprocess.CalledProcessError):
            if await asyncio.to_thread(check):
                return
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def checked_lab() -> tuple[PafCluster, int]:
    for program in ("initdb", "pg_ctl", "pg_basebackup", "psql"):
        require_binary(str(BIN / program))
    require_file(PAF)
    return build_lab()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def paf() -> AsyncIterator[tuple[PafCluster, int]]:
    lab, port = await asyncio.to_thread(checked_lab)
    try:
        await lab.start()
        yield lab, port
    finally:
        await lab.close()
        await asyncio.to_thread(remove_postgres, lab.base_dir)


async def test_paf_promotes_one_primary_and_a_standby_after_the_primary_s_node_dies(
    paf: tuple[PafCluster, int],
) -> None:
    lab, port = paf
    first = await lab.wait_for("one primary, two standbys", one_primary_two_standbys, TIMEOUT)
    primary = next(n for n, r in roles(first).items() if r == "promoted")
    address = lab.address[primary]
    psql(address, port, "CREATE TABLE t (i int PRIMARY KEY)")
    for i in range(50):
        await asyncio.to_thread(psql, address, port, f"INSERT INTO t VALUES ({i})")
    # Every standby has replayed the rows before the primary dies (no commit can be lost).
    expected = psql(address, port, "SELECT pg_current_wal_lsn()")
    for node, role in roles(first).items():
        if role == "started":
            sql = f"SELECT pg_last_wal_replay_lsn() >= '{expected}'"
            await until(
                f"{node} replayed", lambda n=node, q=sql: psql(lab.address[n], port, q) == "t"
            )
    # ... and the primary's PAF monitor has seen both streaming since: it marks a standby it
    # does not see in pg_stat_replication with -1000 ("not connected"), which neither
    # Pacemaker nor hakeeper promotes; killed before that monitor, the primary would leave
    # no standby allowed to promote although none lags.
    standbys = [n for n, r in roles(first).items() if r == "started"]
    await lab.wait_for(
        "the primary's monitor saw both standbys streaming",
        lambda o: all(o.state.promotion_scores.get("pgsqld", {}).get(n, -1) > 0 for n in standbys),
        TIMEOUT,
    )
    os.kill(int((lab.base_dir / f"{primary}-pg" / "data" / "postmaster.pid")
                .read_text().split()[0]), 9)  # fmt: skip
    lab.crash(primary)
    await lab.wait_for(f"{primary} lost", lambda o: o.state.node(primary).status == "lost")
    await lab.confirm_fenced(primary)
    after = await lab.wait_for(
        "a standby promoted",
        lambda o: any(r == "promoted" for n, r in roles(o).items() if n != primary),
        TIMEOUT,
    )
    new = next(n for n, r in roles(after).items() if r == "promoted")
    assert psql(lab.address[new], port, "SELECT count(*) FROM t") == "50"
    psql(lab.address[new], port, "INSERT INTO t VALUES (50)")
    # The other standby follows the new primary (its new timeline) and gets the new row.
    other = next(n for n in standbys if n != new)
    count = "SELECT count(*) FROM t"
    await until(f"{other} follows {new}", lambda: psql(lab.address[other], port, count) == "51")


async def test_the_crashed_primary_s_node_comes_back_and_paf_keeps_it_out(
    paf: tuple[PafCluster, int],
) -> None:
    """After the failover above, the old primary's node returns. Its PostgreSQL was killed
    as a primary (controldata "in production"), so PAF refuses it, as it does under
    Pacemaker: it may hold WAL the new timeline lacks, and needs pg_rewind or a new base
    backup first. The new primary stays the only one throughout."""
    lab, port = paf
    now = await lab.observe()
    old = next(n for n in NODES if now.state.node(n).status == "lost")
    new = next(n for n, r in roles(now).items() if r == "promoted")
    await lab.revive(old)
    seen: list[dict[str, str]] = []

    def refused(o: Observed) -> bool:
        seen.append(roles(o))
        mine = next((s for s in o.statuses if s.resource == "pgsqld" and s.node == old), None)
        # Found by the probe, then refused again by the recovery's stop (or start).
        return (
            old in o.members
            and mine is not None
            and (mine.role, mine.op != "probe") == ("failed", True)
            and "probably crashed" in mine.reason
        )

    last = await lab.wait_for(f"PAF refused {old}", refused, TIMEOUT)
    mine = next(s for s in last.statuses if s.resource == "pgsqld" and s.node == old)
    print(f"\n{old} after its return: {mine.role} ({mine.op}: {mine.reason})")
    assert all(r.get(new) == "promoted" for r in seen), seen
    assert all(list(r.values()).count("promoted") == 1 for r in seen), seen
    assert psql(lab.address[new], port, "SELECT count(*) FROM t") == "51"
