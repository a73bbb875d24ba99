"""Three real PostgreSQL 15 instances under PAF's ``pgsqlms`` on a loopback hakeeper cluster.

Shared by the PAF test (tests/runtime/crm_tools/test_paf_postgres.py) and the failover
benchmark (benchmarks/postgres_failover.py): it needs only the hakeeper lab (layer 7) and
Debian's PostgreSQL, so it lives next to the benchmarks rather than in ``src/``.

Each node's daemon runs in a mount namespace of its own where the shared path ``common/`` is
its own PostgreSQL directory (PAF's parameters are one value for every node, as in Pacemaker,
and the three instances share this host). Streaming replication is set up here: standbys
reach "whichever of the three accepts writes" (libpq's multi-host
``target_session_attrs=read-write``), standing in for the VIP a real deployment puts there.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hakeeper.lab.loopback import LoopbackCluster, free_port_on, node_address
from hakeeper.runtime.observed import Observed

BIN = Path("/usr/lib/postgresql/15/bin")
PAF = Path("/usr/lib/ocf/resource.d/heartbeat/pgsqlms")
NODES = ("n1", "n2", "n3")
#: One synchronous standby among the others: a commit is acknowledged only once a standby
#: has it, so a failover to a standby loses no acknowledged commit.
SYNCHRONOUS = "ANY 1 (n1, n2, n3)"


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


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split()[0])


class PafCluster(LoopbackCluster):
    """A loopback cluster whose node daemons each see their own PostgreSQL at ``common``."""

    def agent_env(self, node: str) -> dict[str, str]:
        # PAF's own log (ocf_log), for the failure message.
        return {**super().agent_env(node), "HA_LOGFILE": str(self.paf_log(node))}

    def paf_log(self, node: str) -> Path:
        return self.base_dir / f"{node}-paf.log"

    def data_dir(self, node: str) -> Path:
        return self.base_dir / f"{node}-pg" / "data"

    def tails(self, lines: int = 15) -> str:
        logs = [super().tails(lines)]
        for node in self.names:
            path = self.paf_log(node)
            text = path.read_text(errors="replace") if path.exists() else ""
            logs.append(f"--- {node} PAF\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(logs)

    def agent_argv(self, node: str, *, join: bool = False) -> list[str]:
        own = self.base_dir / f"{node}-pg"
        return [
            "unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind "$1" "$2" && shift 2 && exec "$@"', "sh",
            str(own), str(self.base_dir / "common"), *super().agent_argv(node, join=join),
        ]  # fmt: skip


def prepare_postgres(base: Path, port: int, *, synchronous: bool = False) -> None:
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
    for node in NODES:
        node_settings(base, node, port, synchronous=synchronous)


def node_settings(base: Path, node: str, port: int, *, synchronous: bool) -> None:
    """``node``'s own address, its WAL source (whichever instance accepts writes) under its
    own ``application_name``, and the synchronous standbys, in its ``postgresql.auto.conf``."""
    hosts = ",".join(node_address(i) for i in range(1, len(NODES) + 1))
    sync = f"synchronous_standby_names = '{SYNCHRONOUS}'\n" if synchronous else ""
    auto = base / f"{node}-pg" / "data" / "postgresql.auto.conf"
    auto.write_text(
        f"listen_addresses = '{node_address(NODES.index(node) + 1)}'\nport = {port}\n"
        f"unix_socket_directories = '{base / 'common' / 'run'}'\n"
        f"primary_conninfo = 'host={hosts} port={port} user=postgres "
        f"application_name={node} target_session_attrs=read-write'\n{sync}"
    )
    shutil.chown(auto, "postgres", "postgres")


def rebuild_standby(base: Path, node: str, port: int, source: str, *, synchronous: bool) -> None:
    """What an operator does before a crashed primary may rejoin (PAF refuses it as it is):
    its data directory replaced by a base backup of the primary at ``source``."""
    data = base / f"{node}-pg" / "data"
    shutil.rmtree(data)
    as_postgres(
        str(BIN / "pg_basebackup"), "-h", source, "-p", str(port), "-U", "postgres",
        "-D", str(data), "-X", "stream", "-c", "fast",
    )  # fmt: skip
    node_settings(base, node, port, synchronous=synchronous)


def resources(base: Path, port: int, on_fail: str = "restart") -> str:
    common = base / "common"
    slow = '{ timeout = "60s" }'
    return f"""
[resources.pgsqld]
agent = "ocf:heartbeat:pgsqlms"
on_fail = "{on_fail}"
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


def roles(observed: Observed) -> dict[str, str]:
    return {
        s.node: s.role
        for s in observed.statuses
        if s.resource == "pgsqld" and s.role != "stopped" and s.node in observed.members
    }


def one_primary_two_standbys(observed: Observed) -> bool:
    found = sorted(roles(observed).values())
    return found == ["promoted", "started", "started"]


def build_lab(
    *,
    synchronous: bool = False,
    fence_device: bool = False,
    profile: str = "fast",
    on_fail: str = "restart",
) -> tuple[PafCluster, int]:
    """A fresh lab under /tmp (its PostgreSQL prepared, its daemons not started yet) and the
    PostgreSQL port every instance listens on at its node's address. ``profile``: the
    cluster's timing profile (the benchmark measures "fast"; a long test on a loaded machine
    takes "default", whose longer member lease a busy scheduler does not lapse);
    ``on_fail``: pgsqld's (the default already fences the node of a crashed primary: PAF
    refuses to stop it, and a failed stop is fenced, as in Pacemaker)."""
    base = Path(tempfile.mkdtemp(prefix="hkpg-", dir="/tmp"))
    base.chmod(0o755)
    (base / "common").mkdir()
    port = free_port_on([node_address(i) for i in range(1, len(NODES) + 1)])
    try:
        prepare_postgres(base, port, synchronous=synchronous)
        lab = PafCluster(
            base, resources(base, port, on_fail), fence_device=fence_device, profile=profile
        )
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


# --- the writer -------------------------------------------------------------------------

WRITE_TIMEOUT = 5.0  # one insert (connect + commit), then it counts as failed
#: In the insert's own transaction, after the row: which server took it, its timeline (the
#: first 8 hex digits of the WAL file name the insert went to) and the insert position, so
#: the commit record lies at or after that LSN on that timeline.
WHERE = (
    "SELECT host(inet_server_addr()), substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8),"
    " pg_current_wal_insert_lsn()"
)


@dataclass(frozen=True, slots=True)
class Ack:
    """One acknowledged insert: the row, who took it, where in the WAL, and when."""

    i: int
    node: str
    timeline: int
    lsn: int
    started: float  # monotonic
    acked: float


def parse_lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


class Writer:
    """Inserts 0, 1, 2, ... one at a time into ``table`` (each a fresh ``psql`` through libpq's
    multi-host ``target_session_attrs=read-write``, ``synchronous_commit = on``) until
    stopped, and logs every acknowledged one as an ``Ack``."""

    def __init__(self, port: int, table: str = "bench") -> None:
        hosts = ",".join(node_address(i) for i in range(1, len(NODES) + 1))
        self.conninfo = (
            f"host={hosts} port={port} user=postgres dbname=postgres connect_timeout=2 "
            "target_session_attrs=read-write options='-c synchronous_commit=on'"
        )
        self.table = table
        self.acked: list[Ack] = []
        self.failed = 0
        self.killed_at: float | None = None
        self._nodes = {node_address(i): n for i, n in enumerate(NODES, start=1)}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _insert(self, i: int) -> tuple[str, int, int] | None:
        try:
            done = subprocess.run(
                [str(BIN / "psql"), "-d", self.conninfo, "-qAtX", "-v", "ON_ERROR_STOP=1",
                 "-c", "BEGIN", "-c", f"INSERT INTO {self.table} VALUES ({i})", "-c", WHERE,
                 "-c", "COMMIT"],
                capture_output=True, text=True, timeout=WRITE_TIMEOUT, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return None
        if done.returncode != 0:
            return None
        address, timeline, lsn = done.stdout.strip().split("|")
        return self._nodes.get(address, address), int(timeline, 16), parse_lsn(lsn)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            started = time.monotonic()
            where = self._insert(i)
            if where is not None:
                self.acked.append(Ack(i, *where, started, time.monotonic()))
            else:
                self.failed += 1
                time.sleep(0.01)
            i += 1

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(WRITE_TIMEOUT * 2)

    def acked_after(self, t: float) -> bool:
        """A write *started* after ``t`` was acknowledged (one in flight at the kill may
        still be acknowledged by the dying primary: it says nothing about the new one)."""
        return any(a.started > t for a in self.acked[-5:])

    def outage(self, killed_at: float) -> float:
        """Last acknowledgement before the kill to the first of a write started after it."""
        before = [a.acked for a in self.acked if a.acked <= killed_at]
        after = [a.acked for a in self.acked if a.started > killed_at]
        if not before or not after:
            raise RuntimeError("no acknowledged write on one side of the kill")
        return min(after) - max(before)


# --- the timeline history ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Switch:
    """One line of a timeline's ``.history`` file: ``parent`` ended at ``lsn`` (the next
    timeline of the chain forked there)."""

    parent: int
    lsn: int


def parse_history(text: str) -> tuple[Switch, ...]:
    """``0000000N.history``: ``parentTLI <tab> switchpoint <tab> reason`` per ancestor."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if fields and not fields[0].startswith("#"):
            out.append(Switch(int(fields[0]), parse_lsn(fields[1])))
    return tuple(out)


def read_histories(data_dirs: Sequence[Path]) -> dict[int, set[tuple[Switch, ...]]]:
    """Every ``.history`` file in the instances' ``pg_wal``, by timeline: a timeline's file
    read differently on two instances is a fork, so each version is kept."""
    found: dict[int, set[tuple[Switch, ...]]] = {}
    for data in data_dirs:
        for path in sorted((data / "pg_wal").glob("*.history")):
            found.setdefault(int(path.stem, 16), set()).add(parse_history(path.read_text()))
    return found


def single_writer_problems(
    histories: Mapping[int, set[tuple[Switch, ...]]], acks: Sequence[Ack]
) -> list[str]:
    """What contradicts "one node accepted writes at a time" (empty when nothing does).

    The newest timeline's history names the one chain; every other timeline must be on it
    with the same ancestry (else two primaries forked the database). Every acknowledged
    commit lies on the chain before the LSN where its timeline's successor forked (else a
    commit was acknowledged on a branch the cluster left), each timeline's commits came from
    one node, and in the writer's order the timeline never goes back (two nodes never
    acknowledged in interleaved intervals)."""
    problems: list[str] = []
    for tli, versions in sorted(histories.items()):
        if len(versions) > 1:
            problems.append(f"timeline {tli} has {len(versions)} different histories (a fork)")
    newest = max(histories, default=1)
    chain_file = min(histories.get(newest, {()}), key=len)
    chain = [s.parent for s in chain_file] + [newest]
    ends = {s.parent: s.lsn for s in chain_file}  # where each ancestor was left
    for tli, versions in sorted(histories.items()):
        index = chain.index(tli) if tli in chain else -1
        if index < 0:
            problems.append(f"timeline {tli} is not on the chain {chain} (a fork)")
        elif any(v != tuple(chain_file[:index]) for v in versions):
            problems.append(f"timeline {tli}'s ancestry differs from the chain {chain} (a fork)")
    nodes: dict[int, str] = {}
    last = 0
    for ack in sorted(acks, key=lambda a: a.acked):
        if ack.timeline not in chain:
            problems.append(f"row {ack.i} acknowledged on timeline {ack.timeline}, off {chain}")
        elif ack.timeline in ends and ack.lsn >= ends[ack.timeline]:
            problems.append(
                f"row {ack.i} acknowledged by {ack.node} on timeline {ack.timeline} at "
                f"{ack.lsn:#x}, after the fork at {ends[ack.timeline]:#x}"
            )
        if nodes.setdefault(ack.timeline, ack.node) != ack.node:
            problems.append(
                f"row {ack.i} acknowledged by {ack.node} on timeline {ack.timeline}, "
                f"which {nodes[ack.timeline]} wrote"
            )
        if ack.timeline < last:
            problems.append(
                f"row {ack.i} acknowledged on timeline {ack.timeline} after timeline {last}"
            )
        last = max(last, ack.timeline)
    return problems
