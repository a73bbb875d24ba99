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
    hosts = ",".join(node_address(i) for i in range(1, len(NODES) + 1))
    sync = f"synchronous_standby_names = '{SYNCHRONOUS}'\n" if synchronous else ""
    for i, node in enumerate(NODES, start=1):
        auto = base / f"{node}-pg" / "data" / "postgresql.auto.conf"
        auto.write_text(
            f"listen_addresses = '{node_address(i)}'\nport = {port}\n"
            f"unix_socket_directories = '{base / 'common' / 'run'}'\n"
            f"primary_conninfo = 'host={hosts} port={port} user=postgres "
            f"application_name={node} target_session_attrs=read-write'\n{sync}"
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


def roles(observed: Observed) -> dict[str, str]:
    return {
        s.node: s.role
        for s in observed.statuses
        if s.resource == "pgsqld" and s.role != "stopped" and s.node in observed.members
    }


def one_primary_two_standbys(observed: Observed) -> bool:
    found = sorted(roles(observed).values())
    return found == ["promoted", "started", "started"]


def build_lab(*, synchronous: bool = False, fence_device: bool = False) -> tuple[PafCluster, int]:
    """A fresh lab under /tmp (its PostgreSQL prepared, its daemons not started yet) and the
    PostgreSQL port every instance listens on at its node's address."""
    base = Path(tempfile.mkdtemp(prefix="hkpg-", dir="/tmp"))
    base.chmod(0o755)
    (base / "common").mkdir()
    port = free_port_on([node_address(i) for i in range(1, len(NODES) + 1)])
    try:
        prepare_postgres(base, port, synchronous=synchronous)
        lab = PafCluster(base, resources(base, port), fence_device=fence_device)
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
