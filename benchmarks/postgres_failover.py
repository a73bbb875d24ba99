"""Client-observed write outage when the PostgreSQL primary's node dies: hakeeper+PAF vs Patroni.

Same machine, same run, same writer, three fresh PostgreSQL 15 instances (Debian's) per
side, one synchronous standby on each side, all on loopback (127.0.0.11-13):

- hakeeper + PAF: the lab of benchmarks/paf_lab.py (the PAF test's), fencing through the
  lab's power-fence device; the fault is SIGKILL of the primary's postmaster and of its
  node's daemon (``LoopbackCluster.crash``). ``synchronous_standby_names = 'ANY 1 (...)'``.
- Patroni (Debian's ``patroni`` 3.0.2) with one etcd member (Debian's etcd-server, v3 API)
  and ``synchronous_mode: true``; the fault is SIGKILL of the leader's patroni and its
  postmaster. Run twice: its defaults (ttl 30, loop_wait 10, retry_timeout 10) and its
  fastest settings its documentation calls safe (minimums ttl 20, loop_wait 1,
  retry_timeout 3; rule loop_wait + 2 * retry_timeout <= ttl).

The writer inserts unique rows one at a time with ``synchronous_commit = on`` through
libpq's multi-host ``target_session_attrs=read-write`` (each insert a fresh ``psql``),
recording each acknowledged insert. Outage = last acknowledged insert before the kill to
the first acknowledged insert started after it. Then every acknowledged row must be on the
new primary.

    .venv/bin/python benchmarks/postgres_failover.py [--trials N] [--status] [--json]

(as root: setpriv, unshare). Prints every failover, the median outage per side and the
ratios of the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from paf_lab import (
    BIN,
    NODES,
    PAF,
    PafCluster,
    Writer,
    as_postgres,
    build_lab,
    one_primary_two_standbys,
    postmaster_pid,
    psql,
    remove_postgres,
    roles,
)

from hakeeper.errors import HakeeperError
from hakeeper.lab.loopback import free_port_on, node_address

ADDRESSES = [node_address(i) for i in range(1, len(NODES) + 1)]
READY_LIMIT = 120.0  # set-up until one primary and two streaming standbys
RECOVERY_LIMIT = 90.0  # kill until the first acknowledged write afterwards
AFTER_RECOVERY = 1.0  # writes kept going after the recovery, before the count
PATRONI_SETTINGS = {
    "patroni-default": {"ttl": 30, "loop_wait": 10, "retry_timeout": 10},
    "patroni-tuned": {"ttl": 20, "loop_wait": 1, "retry_timeout": 3},
}
GOALS = {"patroni-default": 0.5, "patroni-tuned": 1.0}


@dataclass(frozen=True, slots=True)
class Result:
    side: str
    outage_s: float
    acknowledged: int
    missing: int
    failed_writes: int
    new_primary: str


def wait(what: str, check: Callable[[], bool], limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (subprocess.SubprocessError, OSError, ValueError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"timed out after {limit}s waiting for {what}")


def measure(side: str, writer: Writer, port: int, kill: Callable[[], None]) -> Result:
    """Writes flowing, kill the primary's node, wait for writes again, count losses."""
    writer.start()
    try:
        wait("writes acknowledged", lambda: len(writer.acked) >= 20, 60)
        killed_at = writer.killed_at = time.monotonic()
        kill()
        wait("a write acknowledged after the kill", lambda: writer.acked_after(killed_at),
             RECOVERY_LIMIT)  # fmt: skip
        time.sleep(AFTER_RECOVERY)
    finally:
        writer.stop()
    wait("one instance accepting writes", lambda: any(accepts_writes(a, port) for a in ADDRESSES),
         30)  # fmt: skip
    new = next(a for a in ADDRESSES if accepts_writes(a, port))
    present = {int(x) for x in psql(new, port, "SELECT i FROM bench").split()}
    missing = [a.i for a in writer.acked if a.i not in present]
    return Result(
        side, writer.outage(killed_at), len(writer.acked), len(missing), writer.failed,
        NODES[ADDRESSES.index(new)],
    )  # fmt: skip


def accepts_writes(address: str, port: int) -> bool:
    try:
        return psql(address, port, "SELECT pg_is_in_recovery()") == "f"
    except subprocess.CalledProcessError:  # the killed one
        return False


def streaming(address: str, port: int) -> bool:
    sql = "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
    return psql(address, port, sql) == "2"


# --- hakeeper + PAF ---------------------------------------------------------------------


def show_status(lab: PafCluster, when: str) -> None:
    """``hakeeper status`` of the lab, as an operator sees it (for docs/databases.md)."""
    cli = Path(sys.executable).parent / "hakeeper"
    done = subprocess.run(
        [str(cli), "status", "--config", str(lab.config_path)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "COLUMNS": "100"},
    )  # fmt: skip
    print(f"--- hakeeper status {when}\n{done.stdout}{done.stderr}", file=sys.stderr)


async def milestones(lab: PafCluster, primary: str, seen: dict[str, float]) -> None:
    """When the cluster saw the primary's node lost, fenced and another instance promoted
    (polled every 0.2 s, so each is up to that late): where hakeeper's outage goes."""
    while True:
        try:
            observed = await lab.observe()
        except HakeeperError:
            observed = None
        if observed is not None:
            node = observed.state.node(primary)
            others = [r for n, r in roles(observed).items() if n != primary]
            steps = {"lost": node.status == "lost", "fenced": node.fenced,
                     "promoted": "promoted" in others}  # fmt: skip
            for what, now in steps.items():
                if now and what not in seen:
                    seen[what] = time.monotonic()
        await asyncio.sleep(0.2)


async def hakeeper_side(status: bool = False) -> Result:
    lab, port = await asyncio.to_thread(build_lab, synchronous=True, fence_device=True)
    try:
        await lab.start()
        first = await lab.wait_for("one primary, two standbys", one_primary_two_standbys,
                                   READY_LIMIT)  # fmt: skip
        primary = next(n for n, r in roles(first).items() if r == "promoted")
        address = lab.address[primary]
        await asyncio.to_thread(wait, "two standbys streaming",
                                lambda: streaming(address, port), READY_LIMIT)  # fmt: skip
        psql(address, port, "CREATE TABLE bench (i int PRIMARY KEY)")
        standbys = [n for n, r in roles(first).items() if r == "started"]
        # PAF promotes only a standby its primary's monitor saw streaming (score > 0).
        await lab.wait_for(
            "the primary's monitor saw both standbys",
            lambda o: all(
                o.state.promotion_scores.get("pgsqld", {}).get(n, -1) > 0 for n in standbys
            ),
            READY_LIMIT,
        )

        if status:
            await asyncio.to_thread(show_status, lab, f"before the kill of {primary}")

        def kill() -> None:
            os.kill(postmaster_pid(lab.data_dir(primary)), signal.SIGKILL)
            lab.crash(primary)

        writer = Writer(port)
        seen: dict[str, float] = {}
        watching = asyncio.create_task(milestones(lab, primary, seen))
        try:
            result = await asyncio.to_thread(measure, "hakeeper+PAF", writer, port, kill)
        finally:
            watching.cancel()
        if status:
            await asyncio.to_thread(show_status, lab, "after the failover")
            assert writer.killed_at is not None
            steps = ", ".join(f"{what} +{at - writer.killed_at:.1f}s" for what, at in seen.items())
            print(f"--- after the kill: {steps}, write +{result.outage_s:.1f}s", file=sys.stderr)
        return result
    finally:
        await lab.close()
        await asyncio.to_thread(remove_postgres, lab.base_dir)


# --- Patroni ----------------------------------------------------------------------------


def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


class PatroniLab:
    """One etcd member and three Patroni daemons (as postgres), each its own PostgreSQL;
    every process it starts is stopped by PID in ``close``."""

    def __init__(self, base: Path, timing: dict[str, int]) -> None:
        self.base = base
        self.port = free_port_on(ADDRESSES)
        self.rest = free_port_on(ADDRESSES)
        self.client = free_port("127.0.0.1")
        self.peer = free_port("127.0.0.1")
        self.timing = timing
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def node_dir(self, node: str) -> Path:
        return self.base / node

    def config(self, node: str) -> str:
        address = ADDRESSES[NODES.index(node)]
        own = self.node_dir(node)
        t = self.timing
        # JSON is YAML: no YAML writer needed.
        return json.dumps({
            "scope": "bench", "name": node,
            "restapi": {"listen": f"{address}:{self.rest}",
                        "connect_address": f"{address}:{self.rest}"},
            "etcd3": {"hosts": [f"127.0.0.1:{self.client}"]},
            "bootstrap": {
                "dcs": {"ttl": t["ttl"], "loop_wait": t["loop_wait"],
                        "retry_timeout": t["retry_timeout"], "synchronous_mode": True,
                        "postgresql": {"parameters": {"wal_keep_size": "256MB"}}},
                "initdb": [{"auth": "trust"}],
                "pg_hba": ["local all all trust", "host all all 127.0.0.0/8 trust",
                           "host replication all 127.0.0.0/8 trust"],
            },
            "postgresql": {
                "listen": f"{address}:{self.port}", "connect_address": f"{address}:{self.port}",
                "data_dir": str(own / "data"), "bin_dir": str(BIN),
                "pgpass": str(own / "pgpass"),
                "authentication": {
                    "superuser": {"username": "postgres", "password": "bench"},
                    "replication": {"username": "replicator", "password": "bench"},
                },
                "parameters": {"unix_socket_directories": str(own)},
            },
        }, indent=1)  # fmt: skip

    def start(self) -> None:
        etcd_dir = self.base / "etcd"
        self.procs["etcd"] = subprocess.Popen(
            ["etcd", "--name", "e1", "--data-dir", str(etcd_dir),
             "--listen-client-urls", f"http://127.0.0.1:{self.client}",
             "--advertise-client-urls", f"http://127.0.0.1:{self.client}",
             "--listen-peer-urls", f"http://127.0.0.1:{self.peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer}",
             "--initial-cluster", f"e1=http://127.0.0.1:{self.peer}"],
            stdout=(self.base / "etcd.log").open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait("etcd", lambda: self.get(f"http://127.0.0.1:{self.client}/health") == 200, 30)
        for node in NODES:
            own = self.node_dir(node)
            own.mkdir(mode=0o700)
            shutil.chown(own, "postgres", "postgres")
            conf = own / "patroni.yml"
            conf.write_text(self.config(node))
            shutil.chown(conf, "postgres", "postgres")
            self.procs[node] = subprocess.Popen(
                ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
                 "/usr/bin/patroni", str(conf)],
                stdout=(self.base / f"{node}.log").open("wb"), stderr=subprocess.STDOUT,
            )  # fmt: skip
            if node == NODES[0]:  # n1 bootstraps, so the same node starts as the primary
                wait("n1 bootstrapped", lambda: self.get(self.url("n1", "primary")) == 200,
                     READY_LIMIT)  # fmt: skip

    def url(self, node: str, path: str) -> str:
        return f"http://{ADDRESSES[NODES.index(node)]}:{self.rest}/{path}"

    @staticmethod
    def get(url: str) -> int:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except OSError:
            return 0

    def primary(self) -> str:
        return next(n for n in NODES if self.get(self.url(n, "primary")) == 200)

    def kill(self, node: str) -> None:
        pid = postmaster_pid(self.node_dir(node) / "data")
        self.procs[node].kill()
        os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL if name == "etcd" else signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for node in NODES:
            data = self.node_dir(node) / "data"
            if (data / "postmaster.pid").exists():
                as_postgres(str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop",
                            check=False)  # fmt: skip


def patroni_side(setting: str) -> Result:
    base = Path(tempfile.mkdtemp(prefix="hkpatroni-", dir="/tmp"))
    base.chmod(0o755)
    lab = PatroniLab(base, PATRONI_SETTINGS[setting])
    try:
        lab.start()
        primary = lab.primary()
        address = ADDRESSES[NODES.index(primary)]
        wait("two standbys streaming", lambda: streaming(address, lab.port), READY_LIMIT)
        sync = "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'"
        wait("a synchronous standby", lambda: psql(address, lab.port, sync) == "1", READY_LIMIT)
        psql(address, lab.port, "CREATE TABLE bench (i int PRIMARY KEY)")
        return measure(setting, Writer(lab.port), lab.port, lambda: lab.kill(primary))
    finally:
        lab.close()
        if not os.environ.get("KEEP"):
            shutil.rmtree(base, ignore_errors=True)


# --- main -------------------------------------------------------------------------------


def check_installed() -> None:
    for path in (BIN / "initdb", BIN / "psql", PAF, Path("/usr/bin/patroni")):
        if not path.exists():
            sys.exit(f"{path} missing: `make bench-deps` installs the benchmark's packages")
    if shutil.which("etcd") is None:
        sys.exit("etcd missing: `make bench-deps` installs etcd-server")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--status", action="store_true", help="hakeeper status before and after (stderr)"
    )
    parser.add_argument("--trials", type=int, default=1, choices=range(1, 6),
                        help="failovers per side (each side ~1-2 min)")  # fmt: skip
    parser.add_argument("--only", choices=["hakeeper", *PATRONI_SETTINGS], help="one side alone")
    args = parser.parse_args()
    check_installed()
    if args.only:
        if args.only == "hakeeper":
            one = asyncio.run(hakeeper_side(args.status))
        else:
            one = patroni_side(args.only)
        print(json.dumps(asdict(one)))
        return
    results: list[Result] = []
    for _ in range(args.trials):  # the sides interleaved, so machine noise spreads over all
        results.append(asyncio.run(hakeeper_side(args.status)))
        results += [patroni_side(s) for s in PATRONI_SETTINGS]
    medians = {
        side: statistics.median(r.outage_s for r in results if r.side == side)
        for side in ("hakeeper+PAF", *PATRONI_SETTINGS)
    }
    ratios = {s: medians["hakeeper+PAF"] / medians[s] for s in PATRONI_SETTINGS}
    if args.json:
        print(json.dumps({"results": [asdict(r) for r in results], "medians": medians,
                          "ratios": ratios}))  # fmt: skip
    else:
        report(results, medians, ratios)
    if any(r.missing for r in results):
        sys.exit("acknowledged rows missing on a new primary")


def report(results: list[Result], medians: dict[str, float], ratios: dict[str, float]) -> None:
    print(f"{'side':<16} {'outage s':>9} {'acked':>6} {'missing':>8} {'failed':>7}  new primary")
    for r in sorted(results, key=lambda r: r.side):
        print(f"{r.side:<16} {r.outage_s:>9.2f} {r.acknowledged:>6} {r.missing:>8} "
              f"{r.failed_writes:>7}  {r.new_primary}")  # fmt: skip
    print("median outage: " + ", ".join(f"{side} {m:.2f} s" for side, m in medians.items()))
    for setting, ratio in ratios.items():
        goal = GOALS[setting]
        verdict = "met" if ratio <= goal else "NOT met"
        print(f"hakeeper / {setting} (medians): {ratio:.2f} (goal <= {goal}: {verdict})")


if __name__ == "__main__":
    main()
