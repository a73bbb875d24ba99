"""Session store throughput and p99 against memcached and Redis+WAIT, same load generator.

Targets (every server pinned to CPU1 with taskset, the load generator to CPU0):

- ``memcached``: Debian memcached, ``-t 1``.
- ``hakeeper-1``: one standalone hakeeper store node.
- ``hakeeper-3``: three hakeeper nodes (one primary + two replicas) on 127.0.0.51-53; the
  primary answers a write once a majority (2 of 3) holds it; clients talk to the primary.
- ``hakeeper-3-tls`` (with ``--peer-tls``): the same with TLS on the peer link.
- ``redis-wait``: Redis primary + one replica; every SET is followed by ``WAIT 1 0`` on the
  same connection (acknowledged on 2 nodes, the closest durable peer). GETs go to the primary.

The load generator is ``benchmarks/sessions_loadgen.c`` (compiled here with gcc): one
thread, epoll, 50 connections, closed loop, pipeline 1 or 16, 100-byte values, 10,000 keys.
Gets run after sets, so keys exist. Prints a table of ops/s, p99 and the CPU time (user +
system, from /proc/PID/stat) each server process spent per operation, and the ratios
hakeeper-1 / memcached and hakeeper-3 / redis-wait. CPU per operation is far less sensitive
to other load on the machine than ops/s: compare it when the machine is not quiet.

    .venv/bin/python benchmarks/sessions_vs_memcached.py [--seconds 5] [--json] [--peer-tls]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from children import Children, free_port, wait_port

HERE = Path(__file__).resolve().parent
SERVER_CPU = "1"
CLIENT_CPU = "0"
CONNS = 50
VALUE_SIZE = 100
KEYS = 10_000
PIPELINES = (1, 16)
OPS = ("set", "get")


@dataclass(frozen=True)
class Result:
    target: str
    op: str
    pipeline: int
    ops_per_s: float
    p50_us: int
    p99_us: int
    errors: int
    cpu_us_per_op: tuple[float, ...]  # per server process, in start order (primary first)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Servers:
    """The servers of one target, pinned to the server CPU; stopped by PID at the end."""

    def __init__(self, workdir: Path) -> None:
        self.children = Children(workdir)

    def start(self, name: str, argv: list[str], host: str, port: int) -> None:
        proc = self.children.start(name, ["taskset", "-c", SERVER_CPU, *argv])
        wait_port(host, port, proc, timeout=15)

    def pids(self) -> list[int]:
        # taskset execs the server, so the child's PID is the server's.
        return [proc.pid for proc in self.children.procs]

    def stop(self) -> None:
        self.children.stop()


@contextlib.contextmanager
def target(name: str, workdir: Path) -> Iterator[tuple[str, int, str, list[int]]]:
    """Start one target; yield (host, port, loadgen protocol, server PIDs)."""
    servers = Servers(workdir)
    host = "127.0.0.1"
    try:
        if name == "memcached":
            port = free_port(host)
            argv = ["memcached", "-p", str(port), "-l", host, "-U", "0", "-t", "1", "-m", "256"]
            if os.geteuid() == 0:
                argv += ["-u", "nobody"]
            servers.start(name, argv, host, port)
            yield host, port, "mc", servers.pids()
        elif name == "hakeeper-1":
            port = free_port(host)
            servers.start(name, store_argv(f"{host}:{port}", [], False), host, port)
            yield host, port, "mc", servers.pids()
        elif name in ("hakeeper-3", "hakeeper-3-tls"):
            hosts = ["127.0.0.51", "127.0.0.52", "127.0.0.53"]
            addresses = [f"{h}:{free_port(h)}" for h in hosts]
            # The nodes replicate over their peer ports, proving a secret made for the run.
            peers = [f"{h}:{free_port(h)}" for h in hosts]
            secret = workdir / f"{name}-secret"
            fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, secrets.token_urlsafe(32).encode() + b"\n")
            os.close(fd)
            tls = peer_tls_args(workdir) if name == "hakeeper-3-tls" else []
            for index, address in enumerate(addresses):
                h, _, p = address.rpartition(":")
                argv = store_argv(address, peers, index == 0)
                argv += ["--peer-listen", peers[index], "--secret-file", str(secret), *tls]
                servers.start(f"{name}-{index}", argv, h, int(p))
            h, _, p = addresses[0].rpartition(":")
            wait_replicas(h, int(p))
            yield h, int(p), "mc", servers.pids()
        elif name == "redis-wait":
            port = free_port(host)
            replica_port = free_port(host)
            # --dir: the replica writes the RDB it syncs from; keep it in the scratch dir.
            base = ["redis-server", "--save", "", "--appendonly", "no", "--bind", host]
            base += ["--dir", str(workdir)]
            servers.start(name, [*base, "--port", str(port)], host, port)
            servers.start(
                f"{name}-replica",
                [*base, "--port", str(replica_port), "--replicaof", host, str(port)],
                host,
                replica_port,
            )
            wait_redis_replica(host, port)
            yield host, port, "redis-wait", servers.pids()
        else:
            raise ValueError(name)
    finally:
        servers.stop()


def peer_tls_args(workdir: Path) -> list[str]:
    """A self-signed certificate (its own CA) for every node: TLS on the peer link."""
    cert, key = workdir / "peer-cert.pem", workdir / "peer-key.pem"
    argv = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt"]
    argv += ["ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out", str(cert)]
    argv += ["-days", "2", "-subj", "/CN=hakeeper-sessions-bench"]
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    key.chmod(0o600)
    return ["--peer-tls-cert", str(cert), "--peer-tls-key", str(key), "--peer-tls-ca", str(cert)]


def store_argv(address: str, peers: list[str], primary: bool) -> list[str]:
    argv = [sys.executable, "-m", "hakeeper.cli.sessions", "serve", "--listen", address]
    argv += ["--memory", "256m", "--log-level", "WARNING"]
    if peers:
        argv += ["--peers", ",".join(peers), "--epoch", "1"]
    if primary:
        argv.append("--primary")
    return argv


def wait_replicas(host: str, port: int, timeout: float = 15) -> None:
    """Until the primary's stats show a commit (both streams up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(b"set warmup 0 0 1\r\nx\r\n")
            if sock.recv(100) == b"STORED\r\n":
                return
        time.sleep(0.1)
    raise RuntimeError("hakeeper-3: primary never acknowledged a write")


def wait_redis_replica(host: str, port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["redis-cli", "-h", host, "-p", str(port), "INFO", "replication"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
        if "connected_slaves:1" in out and "state=online" in out:
            return
        time.sleep(0.2)
    raise RuntimeError("redis replica never came online")


def run_load(
    loadgen: Path, host: str, port: int, proto: str, op: str, pipeline: int, seconds: float
) -> dict[str, float]:
    if op == "get" and proto == "redis-wait":
        proto = "redis"
    argv = ["taskset", "-c", CLIENT_CPU, str(loadgen), host, str(port), proto, op]
    argv += [str(CONNS), str(pipeline), str(seconds), str(VALUE_SIZE), str(KEYS)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=True)
    return dict(json.loads(out.stdout))


def compile_loadgen(workdir: Path) -> Path:
    binary = workdir / "sessions_loadgen"
    subprocess.run(
        ["gcc", "-O2", "-o", str(binary), str(HERE / "sessions_loadgen.c")],
        check=True,
        timeout=60,
    )
    return binary


def ratio(results: list[Result], a: str, b: str, op: str, pipeline: int) -> float:
    def find(name: str) -> Result:
        return next(r for r in results if (r.target, r.op, r.pipeline) == (name, op, pipeline))

    return find(a).ops_per_s / find(b).ops_per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--peer-tls", action="store_true", help="also run hakeeper-3 with TLS on the peer link"
    )
    args = parser.parse_args()
    names = ["memcached", "hakeeper-1", "hakeeper-3", "redis-wait"]
    if args.peer_tls:
        names.insert(3, "hakeeper-3-tls")
    for tool in ("gcc", "taskset", "memcached", "redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found (make bench-deps installs the Debian packages)")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="hk-sessions-bench-") as tmp:
        workdir = Path(tmp)
        loadgen = compile_loadgen(workdir)
        for name in names:
            with target(name, workdir) as (host, port, proto, pids):
                for pipeline in PIPELINES:
                    for op in OPS:
                        before = [cpu_seconds(pid) for pid in pids]
                        figures = run_load(loadgen, host, port, proto, op, pipeline, args.seconds)
                        done = max(figures["ops_per_s"] * args.seconds, 1.0)
                        cpu = tuple(
                            (cpu_seconds(pid) - start) * 1e6 / done
                            for pid, start in zip(pids, before, strict=True)
                        )
                        results.append(
                            Result(
                                name,
                                op,
                                pipeline,
                                figures["ops_per_s"],
                                int(figures["p50_us"]),
                                int(figures["p99_us"]),
                                int(figures["errors"]),
                                cpu,
                            )
                        )
    ratios = {
        f"hakeeper-1/memcached {op} P{p}": ratio(results, "hakeeper-1", "memcached", op, p)
        for op in OPS
        for p in PIPELINES
    } | {
        f"{name}/redis-wait {op} P{p}": ratio(results, name, "redis-wait", op, p)
        for name in names
        if name.startswith("hakeeper-3")
        for op in OPS
        for p in PIPELINES
    }
    load = os.getloadavg()
    if args.json:
        print(json.dumps({"results": [asdict(r) for r in results], "ratios": ratios, "load": load}))
        return
    header = ("target", "op", "P", "ops/s", "p50 us", "p99 us", "errors", "CPU us/op")
    print("{:<12} {:<4} {:>3} {:>10} {:>8} {:>8} {:>6}  {}".format(*header))
    for r in results:
        cpu = " + ".join(f"{value:.1f}" for value in r.cpu_us_per_op)
        print(
            f"{r.target:<12} {r.op:<4} {r.pipeline:>3} {r.ops_per_s:>10.0f} "
            f"{r.p50_us:>8} {r.p99_us:>8} {r.errors:>6}  {cpu}"
        )
    for label, value in ratios.items():
        print(f"{label:<36} {value:.2f}x")
    print(f"load average after the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
