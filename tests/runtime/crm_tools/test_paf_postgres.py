"""Real PostgreSQL 15 under PAF's ``pgsqlms``, unchanged, on a three-node loopback cluster.

Each node's daemon runs in a mount namespace of its own where the shared path ``common/`` is
its own PostgreSQL directory (PAF's parameters are one value for every node, as in Pacemaker,
and the three instances share this host). Streaming replication is set up by the test:
standbys reach "whichever of the three accepts writes" (libpq's multi-host
``target_session_attrs=read-write``), standing in for the VIP a real deployment puts there.

One cluster for the module, in order: the first promotion, the primary's node killed and the
best standby promoted, then that node back (PAF keeps its crashed primary out).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from hakeeper.lab.loopback import LoopbackCluster, free_port_on, node_address
from hakeeper.runtime.observed import Observed
from tests.conftest import require_binary, require_file

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

BIN = Path("/usr/lib/postgresql/15/bin")
PAF = Path("/usr/lib/ocf/resource.d/heartbeat/pgsqlms")
NODES = ("n1", "n2", "n3")
TIMEOUT = 180.0


def as_postgres(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *argv],
        capture_output=True, text=True, timeout=120, check=check,
    )  # fmt: skip


def psql(address: str, port: int, sql: str) -> str:
    done = subprocess.run(
        [str(BIN / "psql"), "-h", address, "-p", str(port), "-U", "postgres", "-qAtX",
         "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return done.stdout.strip()


class PafCluster(LoopbackCluster):
    """A loopback cluster whose node daemons each see their own PostgreSQL at ``common``."""

    def agent_env(self, node: str) -> dict[str, str]:
        # PAF's own log (ocf_log), for the failure message.
        return {**super().agent_env(node), "HA_LOGFILE": str(self.paf_log(node))}

    def paf_log(self, node: str) -> Path:
        return self.base_dir / f"{node}-paf.log"

    def tails(self, lines: int = 15) -> str:
        logs = [super().tails(lines)]
        for node in self.names:
            path = self.paf_log(node)
            text = path.read_text(errors="replace") if path.exists() else ""
            logs.append(f"--- {node} PAF\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(logs)

    def agent_argv(self, node: str) -> list[str]:
        own = self.base_dir / f"{node}-pg"
        return [
            "unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind "$1" "$2" && shift 2 && exec "$@"', "sh",
            str(own), str(self.base_dir / "common"), *super().agent_argv(node),
        ]  # fmt: skip


def prepare_postgres(base: Path, port: int) -> None:
    """n1 a primary (shut down cleanly), n2 and n3 its base backups; per node settings."""
    for node in NODES:
        own = base / f"{node}-pg"
        (own / "run").mkdir(parents=True)
        shutil.chown(own, "postgres", "postgres")
        shutil.chown(own / "run", "postgres", "postgres")
        own.chmod(0o700)
    first = base / "n1-pg"
    as_postgres(str(BIN / "initdb"), "-D", str(first / "data"), "-A", "trust", "-U", "postgres")
    with (first / "data" / "pg_hba.conf").open("a") as hba:
        hba.write("host all all 127.0.0.0/8 trust\nhost replication all 127.0.0.0/8 trust\n")
    with (first / "data" / "postgresql.conf").open("a") as conf:
        conf.write("recovery_target_timeline = 'latest'\nwal_keep_size = '256MB'\n")
    n1 = node_address(1)
    opts = f"-c listen_addresses={n1} -c port={port} -c unix_socket_directories={first}/run"
    ctl = [str(BIN / "pg_ctl"), "-D", str(first / "data"), "-w", "-t", "60"]
    as_postgres(*ctl, "-o", opts, "-l", str(first / "setup.log"), "start")
    try:
        for node in NODES[1:]:
            as_postgres(
                str(BIN / "pg_basebackup"), "-h", n1, "-p", str(port), "-U", "postgres",
                "-D", str(base / f"{node}-pg" / "data"), "-X", "stream", "-c", "fast",
            )  # fmt: skip
    finally:
        as_postgres(*ctl, "-m", "fast", "stop")
    hosts = ",".join(node_address(i) for i in range(1, len(NODES) + 1))
    for i, node in enumerate(NODES, start=1):
        auto = base / f"{node}-pg" / "data" / "postgresql.auto.conf"
        auto.write_text(
            f"listen_addresses = '{node_address(i)}'\nport = {port}\n"
            f"unix_socket_directories = '{base / 'common' / 'run'}'\n"
            f"primary_conninfo = 'host={hosts} port={port} user=postgres "
            f"application_name={node} target_session_attrs=read-write'\n"
        )
        shutil.chown(auto, "postgres", "postgres")


def resources(base: Path, port: int) -> str:
    common = base / "common"
    slow = '{ timeout = "60s" }'
    return f"""
[resources.pgsqld]
agent = "ocf:heartbeat:pgsqlms"
params = {{ bindir = "{BIN}", pgdata = "{common}/data", pghost = "{common}/run", pgport = {port} }}
ops.monitor = {{ interval = "2s", timeout = "30s" }}
ops.start = {slow}
ops.stop = {slow}
ops.promote = {slow}
ops.demote = {slow}
ops.notify = {slow}

[clones.pgsql-ha]
resource = "pgsqld"
promotable = true
notify = true
"""


async def until(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(subprocess.CalledProcessError):
            if await asyncio.to_thread(check):
                return
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def roles(observed: Observed) -> dict[str, str]:
    return {
        s.node: s.role
        for s in observed.statuses
        if s.resource == "pgsqld" and s.role != "stopped" and s.node in observed.members
    }


def one_primary_two_standbys(observed: Observed) -> bool:
    found = sorted(roles(observed).values())
    return found == ["promoted", "started", "started"]


def build_lab() -> tuple[PafCluster, int]:
    for program in ("initdb", "pg_ctl", "pg_basebackup", "psql"):
        require_binary(str(BIN / program))
    require_file(PAF)
    base = Path(tempfile.mkdtemp(prefix="hkpg-", dir="/tmp"))
    base.chmod(0o755)
    (base / "common").mkdir()
    port = free_port_on([node_address(i) for i in range(1, len(NODES) + 1)])
    try:
        prepare_postgres(base, port)
        lab = PafCluster(base, resources(base, port))
        for node in NODES:
            run_dir = lab.runtime_dir(node)
            run_dir.mkdir(parents=True, exist_ok=True)
            run_dir.chmod(0o755)  # PAF's psql (as postgres) reads its query files there
    except BaseException:
        remove_postgres(base)
        raise
    return lab, port


def remove_postgres(base: Path) -> None:
    """Stop what a crash left running (the postmasters are not the agents' children)."""
    for node in NODES:
        pid_file = base / f"{node}-pg" / "data" / "postmaster.pid"
        if pid_file.exists():
            as_postgres(str(BIN / "pg_ctl"), "-D", str(pid_file.parent), "-m", "immediate",
                        "stop", check=False)  # fmt: skip
    shutil.rmtree(base, ignore_errors=True)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def paf() -> AsyncIterator[tuple[PafCluster, int]]:
    lab, port = await asyncio.to_thread(build_lab)
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
