"""Session store failover against Redis Sentinel: write outage and lost acknowledged writes
when the node holding the primary is power-cut, under the same writer, in the same run.

One writer sets ``k_i = v_i`` (a key used once, a value naming it), one write at a time,
each under its own 2 s timeout (``benchmarks/write_outage.py``). One second after its first
acknowledgement the node holding the primary is crashed. Outage = first acknowledgement after
the crash minus the last one before it; afterwards every acknowledged key is read back from
the new primary: missing or different = lost.

- ``hakeeper``: a real 3-node cluster on loopback (``hakeeper.lab.loopback``: one agent
  process per node on 127.0.0.11-13), profile ``fast`` with fencing through the lab's power
  fence device and, in the default setting ``fast+suspect``, ``[fencing] suspect_after =
  0.3`` (a silent member is fenced before its lease expires, then its resources recover:
  fence first, so it is safe). One ``sessions`` promotable clone; a write is acknowledged
  once a majority holds it. The writer is the store's own client (``SessionClient``) given
  every node's client address, connected first to the primary's node (as a client talking to
  the primary is); on a lost connection it moves to the next address, where a replica
  forwards to whichever primary it follows (it holds the write while it knows none). Crash:
  the agent and the store process of that node SIGKILLed (``LoopbackCluster.crash``).
- ``sentinel-<ms>``: Debian's Redis 7: a primary + 2 replicas + 3 Sentinels (quorum 2) on
  127.0.0.1, ``down-after-milliseconds`` 1000 and 30000 (the default). For safety as Redis
  users configure it: ``min-replicas-to-write 1`` / ``min-replicas-max-lag 10`` on every
  server, and each SET followed by ``WAIT 1 1000`` on the same connection; a write counts as
  acknowledged only when WAIT reports a replica has it (2 of 3 copies, as hakeeper's
  majority). The writer is Sentinel-aware as redis-py's ``redis.sentinel`` is: after any
  error it asks the Sentinels in turn for the master's address and connects there; a reply
  ``-READONLY`` (a demoted server) is an error too. Crash: SIGKILL of that node's
  redis-server and Sentinel.

Trials are interleaved (hakeeper, sentinel-1000, sentinel-30000, then again), each on fresh
processes. Every process is started here and stopped by PID; traffic stays on loopback.

    .venv/bin/python benchmarks/sessions_failover_vs_sentinel.py [--trials 5] [--json]
        [--sides hakeeper,sentinel-1000,sentinel-30000] [--setting fast+suspect|fast]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from children import Children, children, free_port, wait_port
from resp import RedisError, Resp, call_once
from write_outage import WriterLog, lost_writes, run_writer, write_outage

from hakeeper.agents.procfs import proc_stat
from hakeeper.errors import HakeeperError, SessionStoreError
from hakeeper.lab.loopback import LoopbackCluster, free_port_on, node_address
from hakeeper.runtime.observed import Observed
from hakeeper.sessions.client import SessionClient
from hakeeper.sessions.client_codec import ErrorReply

WRITE_TIMEOUT = 2.0  # each write's own deadline, both sides
WAIT_MS = 1000  # Redis: WAIT 1 <ms> after each SET
BEFORE_FAULT = 1.0  # seconds of acknowledged writes before the crash
AFTER_RECOVERY = 0.5  # ...and after the first acknowledgement that follows it
START_LIMIT = 90.0
RECOVERY_LIMIT = 90.0  # Sentinel's default down-after alone is 30 s
MAX_WRITES = 500_000  # the writer's bound (a trial writes a few thousand)
READ_CHUNK = 500
#: setting -> (profile, fence device, [fencing] suspect_after)
SETTINGS: dict[str, tuple[str, bool, float | None]] = {
    "fast+suspect": ("fast", True, 0.3),
    "fast": ("fast", True, None),
}
SENTINEL_DOWN_AFTER = {"sentinel-1000": 1000, "sentinel-30000": 30000}
MASTER = "hkbench"
REDIS_HOST = "127.0.0.1"


SETUP_ATTEMPTS = 3  # a trial whose cluster never got healthy before the crash starts again


class SetupFailed(RuntimeError):
    """The processes did not reach the healthy starting state: no fault was injected yet."""


@dataclass(frozen=True, slots=True)
class Trial:
    side: str
    trial: int
    outage_s: float
    acknowledged: int
    lost: int
    failed_writes: int


# --- the writer's two clients -----------------------------------------------------------------


class FollowingClient:
    """The store's own client over every node's address, starting at ``addresses[0]``."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses
        self.index = 0
        self.client: SessionClient | None = None
        self.in_doubt = False  # a request was cut off mid-way (timeout): its framing is lost

    async def write(self, key: bytes, value: bytes) -> bool:
        try:
            if self.client is None or self.in_doubt:
                await self.reset()
                self.client = SessionClient(self.addresses[self.index], timeout=WRITE_TIMEOUT)
                await self.client.connect()
            self.in_doubt = True
            reply = await self.client.set(key, value)
            self.in_doubt = False
            return reply == b"STORED"
        except ErrorReply:
            self.in_doubt = False  # e.g. a replica that knows no primary yet: stay, it will
            return False
        except SessionStoreError:
            await self.reset()
            self.index = (self.index + 1) % len(self.addresses)
            return False

    async def reset(self) -> None:
        if self.client is not None:
            await self.client.close()
        self.client = None
        self.in_doubt = False


class SentinelClient:
    """A Sentinel-aware Redis writer: SET + WAIT 1 on the master Sentinel names."""

    def __init__(self, sentinel_ports: list[int]) -> None:
        self.sentinel_ports = sentinel_ports
        self.conn: Resp | None = None
        self.in_doubt = False

    async def master(self) -> tuple[str, int]:
        for port in self.sentinel_ports:
            try:
                reply = await call_once(
                    REDIS_HOST, port, "SENTINEL", "get-master-addr-by-name", MASTER, timeout=0.5
                )
            except (OSError, TimeoutError, RedisError, asyncio.IncompleteReadError):
                continue
            if isinstance(reply, list) and len(reply) == 2:
                host, port_ = reply
                if isinstance(host, bytes) and isinstance(port_, bytes):
                    return host.decode(), int(port_)
        raise OSError("no Sentinel named a master")

    async def write(self, key: bytes, value: bytes) -> bool:
        try:
            if self.conn is None or self.in_doubt:
                self.reset()
                self.conn = Resp(*await self.master())
                await self.conn.connect()
            self.in_doubt = True
            await self.conn.call("SET", key, value)
            replicas = await self.conn.call("WAIT", 1, WAIT_MS)
            self.in_doubt = False
            return isinstance(replicas, int) and replicas >= 1
        except (OSError, RedisError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            self.reset()
            return False

    def reset(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None
        self.in_doubt = False


# --- one trial, whatever the store --------------------------------------------------------------


async def wait_until(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.01)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


async def measure(
    side: str, client_write: FollowingClient | SentinelClient, crash: Callable[[], None]
) -> tuple[WriterLog, float]:
    """Run the writer, crash one second into its acknowledgements, stop it once it has been
    acknowledged again; the log and the moment of the crash."""
    log = WriterLog()
    stop = asyncio.Event()
    prefix = f"{side}-{time.time_ns()}"
    task = asyncio.create_task(
        run_writer(
            client_write.write,
            stop,
            log,
            prefix=prefix,
            timeout=WRITE_TIMEOUT,
            max_writes=MAX_WRITES,
        )
    )
    try:
        await wait_until(f"{side}: a first acknowledged write", lambda: bool(log.acks), START_LIMIT)
        await asyncio.sleep(BEFORE_FAULT)
        # In a thread, so the writer's replies are stamped as they arrive while the node
        # dies. The fault is complete once every process of the node is dead: until then
        # the dying primary may still acknowledge a write already on its way.
        await asyncio.to_thread(crash)
        fault_at = time.monotonic()
        await wait_until(
            f"{side}: an acknowledged write after the crash",
            lambda: bool(log.acks) and log.acks[-1].at > fault_at,
            RECOVERY_LIMIT,
        )
        await asyncio.sleep(AFTER_RECOVERY)
    finally:
        stop.set()
        async with asyncio.timeout(WRITE_TIMEOUT * 2):
            await task
    return log, fault_at


def result(
    side: str, trial: int, log: WriterLog, fault_at: float, read: dict[bytes, bytes | None]
) -> Trial:
    outage = write_outage([ack.at for ack in log.acks], fault_at)
    if outage is None:
        raise RuntimeError(f"{side}: no acknowledged writes on both sides of the crash")
    acked = log.acknowledged()
    return Trial(side, trial, outage, len(acked), lost_writes(acked, read), log.failures)


# --- hakeeper -----------------------------------------------------------------------------------


def store_roles(observed: Observed) -> dict[str, str]:
    return {
        s.node: s.role
        for s in observed.statuses
        if s.resource == "store" and s.role != "stopped" and not observed.state.node(s.node).down
    }


def store_resources(port: int, peer_port: int, nodes: dict[str, str]) -> str:
    table = ", ".join(f'{name} = "{host}"' for name, host in nodes.items())
    return f"""
[resources.store]
agent = "sessions"
params = {{ port = {port}, peer_port = {peer_port}, nodes = {{ {table} }} }}
ops.monitor = {{ interval = "1s", timeout = "10s" }}

[clones.sessions]
resource = "store"
promotable = true
"""


def threads_alive(pid: int, start_time: int) -> bool:
    """Whether a thread of that process still runs: its main thread turns zombie before the
    others are gone, and the sockets close only with the last one."""
    stat = proc_stat(pid)
    if stat is None or stat[1] != start_time:
        return False
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in tids:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        if text[text.rfind(")") + 2 :].split()[0] not in ("Z", "X"):
            return True
    return False


def crash_and_wait(cluster: LoopbackCluster, node: str) -> None:
    """Power cut of ``node``; returns once its store process is dead (SIGKILL is delivered
    asynchronously: a loaded machine can leave the process serving for some milliseconds)."""
    started = []
    for state_file in (cluster.state_dir(node) / "agents").glob("*.json"):
        data = json.loads(state_file.read_text())
        started.append((int(data["pid"]), int(data["start_time"])))
    cluster.crash(node)
    deadline = time.monotonic() + 10
    while any(threads_alive(pid, start) for pid, start in started):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{node}'s store processes {started} survived SIGKILL for 10 s")
        time.sleep(0.001)


async def writable_through(address: str) -> bool:
    try:
        async with SessionClient(address, timeout=WRITE_TIMEOUT) as client:
            return await client.set(b"bench-ready", b"1") == b"STORED"
    except SessionStoreError:
        return False


async def hakeeper_trial(setting: str, trial: int, base: Path) -> Trial:
    nodes = {f"n{i}": node_address(i) for i in (1, 2, 3)}
    hosts = list(nodes.values())
    port = free_port_on(hosts)
    peer_port = free_port_on(hosts)
    while peer_port == port:
        peer_port = free_port_on(hosts)
    profile, fence_device, suspect_after = SETTINGS[setting]
    cluster = LoopbackCluster(
        base, store_resources(port, peer_port, nodes), name="bench", profile=profile,
        fence_device=fence_device, suspect_after=suspect_after,
    )  # fmt: skip
    side = f"hakeeper-{setting}"
    try:
        await cluster.start()
        try:
            # On a loaded machine a node may be suspected and fenced while starting.
            ready = await cluster.wait_for(
                "one store primary and two replicas",
                lambda o: sorted(store_roles(o).values()) == ["promoted", "started", "started"],
                timeout=START_LIMIT,
            )
        except HakeeperError as exc:
            raise SetupFailed(str(exc).splitlines()[0]) from exc
        primary = next(n for n, r in store_roles(ready).items() if r == "promoted")
        order = [primary, *(n for n in nodes if n != primary)]
        addresses = [f"{nodes[n]}:{port}" for n in order]
        # Every node takes a write (replicas forward): the replicas follow the primary.
        deadline = time.monotonic() + START_LIMIT
        for address in addresses:
            while not await writable_through(address):
                if time.monotonic() > deadline:
                    raise SetupFailed(f"{address} never took a write")
                await asyncio.sleep(0.1)
        client = FollowingClient(addresses)
        try:
            log, fault_at = await measure(side, client, lambda: crash_and_wait(cluster, primary))
        finally:
            await client.reset()
        after = await cluster.wait_for(
            "a new store primary",
            lambda o: "promoted" in store_roles(o).values() and primary not in store_roles(o),
            timeout=RECOVERY_LIMIT,
        )
        new_primary = next(n for n, r in store_roles(after).items() if r == "promoted")
        read: dict[bytes, bytes | None] = {}
        async with SessionClient(f"{nodes[new_primary]}:{port}", timeout=10.0) as reader:
            for key in log.acknowledged():
                found = await reader.get(key)
                read[key] = found.data if found is not None else None
        return result(side, trial, log, fault_at, read)
    finally:
        await cluster.close()


# --- Redis + Sentinel ----------------------------------------------------------------------------


def sentinel_conf(port: int, master_port: int, down_after_ms: int, directory: Path) -> str:
    return (
        f"port {port}\nbind {REDIS_HOST}\ndir {directory}\n"
        f"sentinel monitor {MASTER} {REDIS_HOST} {master_port} 2\n"
        f"sentinel down-after-milliseconds {MASTER} {down_after_ms}\n"
    )


def redis_argv(port: int, directory: Path, master_port: int | None) -> list[str]:
    argv = ["redis-server", "--port", str(port), "--bind", REDIS_HOST, "--dir", str(directory)]
    argv += ["--save", "", "--appendonly", "no"]
    argv += ["--min-replicas-to-write", "1", "--min-replicas-max-lag", "10"]
    # The replicas' first sync at once (diskless with its default 5 s delay otherwise).
    argv += ["--repl-diskless-sync-delay", "0"]
    if master_port is not None:
        argv += ["--replicaof", REDIS_HOST, str(master_port)]
    return argv


async def redis_ready(master_port: int, sentinel_ports: list[int]) -> bool:
    try:
        info = await call_once(REDIS_HOST, master_port, "INFO", "replication", timeout=1.0)
        if not isinstance(info, bytes) or b"connected_slaves:2" not in info:
            return False
        if info.count(b"state=online") != 2:
            return False
        for port in sentinel_ports:
            others = await call_once(REDIS_HOST, port, "SENTINEL", "sentinels", MASTER, timeout=1.0)
            replicas = await call_once(
                REDIS_HOST, port, "SENTINEL", "replicas", MASTER, timeout=1.0
            )
            if not (isinstance(others, list) and len(others) == 2):
                return False
            if not (isinstance(replicas, list) and len(replicas) == 2):
                return False
    except (OSError, TimeoutError, RedisError, asyncio.IncompleteReadError):
        return False
    return True


async def sentinel_trial(side: str, trial: int, base: Path) -> Trial:
    down_after = SENTINEL_DOWN_AFTER[side]
    with children(base) as procs:
        return await run_sentinel(procs, side, trial, down_after, base)


async def run_sentinel(
    procs: Children, side: str, trial: int, down_after: int, base: Path
) -> Trial:
    redis_ports = [free_port(REDIS_HOST) for _ in range(3)]
    sentinel_ports = [free_port(REDIS_HOST) for _ in range(3)]
    servers, sentinels = [], []
    for i, port in enumerate(redis_ports):
        directory = base / f"redis{i}"
        directory.mkdir()
        master = None if i == 0 else redis_ports[0]
        servers.append(procs.start(f"redis{i}", redis_argv(port, directory, master)))
        wait_port(REDIS_HOST, port, servers[-1])
    for i, port in enumerate(sentinel_ports):
        conf = base / f"sentinel{i}.conf"  # Sentinel rewrites its own file: one each
        conf.write_text(sentinel_conf(port, redis_ports[0], down_after, base))
        sentinels.append(procs.start(f"sentinel{i}", ["redis-sentinel", str(conf)]))
        wait_port(REDIS_HOST, port, sentinels[-1])
    deadline = time.monotonic() + START_LIMIT
    while not await redis_ready(redis_ports[0], sentinel_ports):
        if time.monotonic() > deadline:
            raise SetupFailed(f"{side}: replicas and Sentinels not ready")
        await asyncio.sleep(0.1)

    def crash() -> None:  # node 0: its redis-server and its Sentinel, by PID
        for proc in (servers[0], sentinels[0]):
            proc.kill()
            proc.wait(10)

    client = SentinelClient(sentinel_ports)
    try:
        log, fault_at = await measure(side, client, crash)
    finally:
        client.reset()
    reader = SentinelClient(sentinel_ports[1:])
    host, port = await reader.master()
    conn = Resp(host, port)
    read: dict[bytes, bytes | None] = {}
    keys = list(log.acknowledged())
    try:
        async with asyncio.timeout(60):
            for start in range(0, len(keys), READ_CHUNK):
                chunk = keys[start : start + READ_CHUNK]
                values = await conn.call("MGET", *chunk)
                assert isinstance(values, list)
                for key, found in zip(chunk, values, strict=True):
                    read[key] = found if isinstance(found, bytes) else None
    finally:
        conn.close()
    return result(side, trial, log, fault_at, read)


# --- the run -------------------------------------------------------------------------------------


async def one_trial(side: str, trial: int, setting: str) -> Trial:
    for attempt in range(1, SETUP_ATTEMPTS + 1):
        base = Path(tempfile.mkdtemp(prefix="hk-bench-sentinel-"))
        try:
            if side == "hakeeper":
                return await hakeeper_trial(setting, trial, base)
            return await sentinel_trial(side, trial, base)
        except SetupFailed as exc:
            print(f"trial {trial} {side}: set-up attempt {attempt} failed: {exc}", file=sys.stderr)
        finally:
            shutil.rmtree(base, ignore_errors=True)
    raise RuntimeError(f"{side}: trial {trial} never got a healthy start in {SETUP_ATTEMPTS}")


async def run(trials: int, sides: list[str], setting: str) -> list[Trial]:
    out: list[Trial] = []
    for trial in range(1, trials + 1):
        for side in sides:  # interleaved, so the machine's noise spreads over every side
            row = await one_trial(side, trial, setting)
            out.append(row)
            print(
                f"trial {trial}/{trials} {row.side:<22} outage {row.outage_s * 1000:8.0f} ms  "
                f"acknowledged {row.acknowledged:6}  lost {row.lost}",
                file=sys.stderr,
            )
    return out


def summary(rows: list[Trial]) -> dict[str, object]:
    medians = {
        side: statistics.median(r.outage_s for r in rows if r.side == side)
        for side in dict.fromkeys(r.side for r in rows)
    }
    hakeeper = next((v for s, v in medians.items() if s.startswith("hakeeper")), None)
    ratios = {
        f"hakeeper / {side}": hakeeper / value
        for side, value in medians.items()
        if hakeeper is not None and side.startswith("sentinel") and value > 0
    }
    return {"median_outage_s": medians, "ratios": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--sides", default="hakeeper,sentinel-1000,sentinel-30000")
    parser.add_argument("--setting", default="fast+suspect", choices=sorted(SETTINGS))
    args = parser.parse_args()
    sides = args.sides.split(",")
    for side in sides:
        if side != "hakeeper" and side not in SENTINEL_DOWN_AFTER:
            sys.exit(f"unknown side {side!r}: hakeeper, {', '.join(SENTINEL_DOWN_AFTER)}")
    for tool in ("redis-server", "redis-sentinel"):
        if any(s.startswith("sentinel") for s in sides) and shutil.which(tool) is None:
            sys.exit(f"{tool} not found (make bench-deps installs the Debian packages)")
    load_before = os.getloadavg()
    rows = asyncio.run(run(args.trials, sides, args.setting))
    figures = summary(rows)
    load_after = os.getloadavg()
    if args.json:
        print(json.dumps({
            "trials": [asdict(r) for r in rows], **figures, "setting": args.setting,
            "load_before": load_before, "load_after": load_after,
        }, indent=2))  # fmt: skip
        return
    print(f"\n{'side':<24}{'trial':>6}{'outage ms':>11}{'acked':>8}{'lost':>6}{'failed':>8}")
    for r in rows:
        print(
            f"{r.side:<24}{r.trial:>6}{r.outage_s * 1000:>11.0f}{r.acknowledged:>8}"
            f"{r.lost:>6}{r.failed_writes:>8}"
        )
    medians = figures["median_outage_s"]
    assert isinstance(medians, dict)
    print("\nmedian write outage:")
    for side, value in medians.items():
        print(f"  {side:<24}{value * 1000:>8.0f} ms")
    ratios = figures["ratios"]
    assert isinstance(ratios, dict)
    for label, value in ratios.items():
        print(f"  {label:<40}{value:.2f}x")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")


if __name__ == "__main__":
    main()
