"""Throughput and latency of hakeeper's balancer against HAProxy, measured in the same run.

Two Debian nginx backends (one worker each, ``return 200 "ok"``) on CPU0 with wrk
(``-t1 -c50``); HAProxy (``nbthread 1``) and hakeeper (1 worker) each pinned to CPU1 and
measured one after the other. Four scenarios: L4 keep-alive, L4 new connection per request
(``Connection: close``), L7 keep-alive, L7 new connection per request. Round-robin, active
health checks on (HAProxy ``check``, hakeeper ``tcp`` checks, both every 2 s). Each scenario
runs ``--runs`` times for ``--duration`` seconds per target; medians of req/s, p50, p99,
the ratios hakeeper/HAProxy and each proxy's CPU time per request (utime + stime from
/proc around each wrk run: far less sensitive to other load on the machine than req/s) are
printed (``--json`` for a document).

    .venv/bin/python benchmarks/balancer_vs_haproxy.py [--duration 10] [--runs 3] [--json]
        [--scenario "L7 keep-alive" ...]

Everything listens on free ports of 127.0.0.1; every process started here is stopped by its
PID at the end, also on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from hakeeper.lab.processes import ManagedProcess, free_port

HOST = "127.0.0.1"
SCENARIOS = (
    ("L4 keep-alive", "tcp", False),
    ("L4 new conn", "tcp", True),
    ("L7 keep-alive", "http", False),
    ("L7 new conn", "http", True),
)
GOALS = {"L4 keep-alive": 0.9, "L4 new conn": 0.75, "L7 keep-alive": 0.7, "L7 new conn": None}

NGINX_CONF = """\
worker_processes 1;
master_process off;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  keepalive_requests 1000000;
  server {{
    listen {host}:{port} backlog=4096;
    location / {{ return 200 "ok"; }}
  }}
}}
"""

HAPROXY_CONF = """\
global
  nbthread 1
  maxconn 4000
defaults
  timeout connect 3s
  timeout client 60s
  timeout server 60s
  timeout http-request 10s
  timeout http-keep-alive 60s
frontend ft_tcp
  mode tcp
  bind {host}:{tcp_port}
  default_backend bk_tcp
backend bk_tcp
  mode tcp
  balance roundrobin
  server s1 {b1} check inter 2000 fall 3 rise 2
  server s2 {b2} check inter 2000 fall 3 rise 2
frontend ft_http
  mode http
  bind {host}:{http_port}
  option forwardfor
  default_backend bk_http
backend bk_http
  mode http
  balance roundrobin
  server s1 {b1} check inter 2000 fall 3 rise 2
  server s2 {b2} check inter 2000 fall 3 rise 2
"""

HAKEEPER_CONF = """\
[[frontend]]
name = "tcp"
bind = "{host}:{tcp_port}"
mode = "tcp"
backend = "tcp"

[[frontend]]
name = "http"
bind = "{host}:{http_port}"
mode = "http"
backend = "http"

[[backend]]
name = "tcp"
policy = "roundrobin"
servers = [{{ name = "s1", address = "{b1}" }}, {{ name = "s2", address = "{b2}" }}]
check = {{ type = "tcp", inter = 2.0, fall = 3, rise = 2 }}

[[backend]]
name = "http"
policy = "roundrobin"
servers = [{{ name = "s1", address = "{b1}" }}, {{ name = "s2", address = "{b2}" }}]
check = {{ type = "tcp", inter = 2.0, fall = 3, rise = 2 }}
"""


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int = 0
    cpu_us: float = 0.0  # the proxy's CPU time (user + system) per request served


@dataclass(frozen=True)
class Row:
    scenario: str
    haproxy: WrkResult
    hakeeper: WrkResult
    ratio_rps: float
    ratio_p99: float
    goal: float | None


def _ms(value: str, unit: str) -> float:
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return float(value) * scale


def parse_wrk(text: str) -> WrkResult:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", text, re.M))
    values = {}
    for key, raw in lat.items():
        m = re.match(r"([\d.]+)(\w+)", raw)
        assert m is not None
        values[key] = _ms(m.group(1), m.group(2))
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(int(g) for g in m.groups())
    m = re.search(r"(\d+) requests in", text)
    requests = int(m.group(1)) if m else 0
    return WrkResult(rps, values.get("50", 0.0), values.get("99", 0.0), errors, requests)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (every thread) from /proc, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(port: int, close: bool, duration: int, pid: int) -> WrkResult:
    """One wrk run; ``cpu_us`` is the proxy's CPU time per request (less load-sensitive)."""
    before = cpu_seconds(pid)
    result = _wrk(port, close, duration)
    spent = cpu_seconds(pid) - before
    cpu_us = spent * 1e6 / result.requests if result.requests else 0.0
    return replace(result, cpu_us=cpu_us)


def _wrk(port: int, close: bool, duration: int) -> WrkResult:
    argv = ["taskset", "-c", "0", "wrk", "-t1", "-c50", f"-d{duration}s", "--latency"]
    if close:
        argv += ["-H", "Connection: close"]
    argv.append(f"http://{HOST}:{port}/")
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=True)
    return parse_wrk(out.stdout)


def wait_http(port: int, deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


@contextlib.contextmanager
def started(procs: list[ManagedProcess], proc: ManagedProcess) -> Iterator[ManagedProcess]:
    procs.append(proc)
    proc.start()
    yield proc


def median(results: list[WrkResult]) -> WrkResult:
    return WrkResult(
        statistics.median(r.rps for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        sum(r.errors for r in results),
        sum(r.requests for r in results),
        statistics.median(r.cpu_us for r in results),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--runs", type=int, default=3, help="runs per scenario and target")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument(
        "--scenario",
        action="append",
        choices=[s[0] for s in SCENARIOS],
        help="run only this scenario (repeatable; all by default)",
    )
    args = ap.parse_args()
    for binary in ("nginx", "haproxy", "wrk", "taskset"):
        if shutil.which(binary) is None:
            print(f"{binary} not installed (make bench-deps installs it)", file=sys.stderr)
            return 2
    nginx = shutil.which("nginx") or "nginx"
    haproxy = shutil.which("haproxy") or "haproxy"
    procs: list[ManagedProcess] = []
    workdir = Path(tempfile.mkdtemp(prefix="hk-lb-bench-"))
    try:
        backend_ports = [free_port(HOST), free_port(HOST)]
        for i, port in enumerate(backend_ports):
            d = workdir / f"nginx{i}"
            for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
                (d / sub).mkdir(parents=True, exist_ok=True)
            conf = d / "nginx.conf"
            conf.write_text(NGINX_CONF.format(dir=d, host=HOST, port=port))
            argv = ["taskset", "-c", "0", nginx, "-p", str(d), "-c", str(conf)]
            procs.append(ManagedProcess(f"nginx{i}", argv, d / "out.log"))
            procs[-1].start()
        for port in backend_ports:
            wait_http(port)
        b1, b2 = (f"{HOST}:{p}" for p in backend_ports)
        ports = {
            "haproxy": {"tcp": free_port(HOST), "http": free_port(HOST)},
            "hakeeper": {"tcp": free_port(HOST), "http": free_port(HOST)},
        }
        hcfg = workdir / "haproxy.cfg"
        hcfg.write_text(
            HAPROXY_CONF.format(
                host=HOST,
                tcp_port=ports["haproxy"]["tcp"],
                http_port=ports["haproxy"]["http"],
                b1=b1,
                b2=b2,
            )
        )
        kcfg = workdir / "balancer.toml"
        kcfg.write_text(
            HAKEEPER_CONF.format(
                host=HOST,
                tcp_port=ports["hakeeper"]["tcp"],
                http_port=ports["hakeeper"]["http"],
                b1=b1,
                b2=b2,
            )
        )
        procs.append(
            ManagedProcess(
                "haproxy",
                ["taskset", "-c", "1", haproxy, "-db", "-f", str(hcfg)],
                workdir / "haproxy.log",
            )
        )
        procs[-1].start()
        pids = {"haproxy": procs[-1].pid or 0}
        hk_argv = [sys.executable, "-m", "hakeeper", "balance", "--config", str(kcfg)]
        procs.append(
            ManagedProcess(
                "hakeeper",
                ["taskset", "-c", "1", *hk_argv, "--log-level", "warning"],
                workdir / "hakeeper.log",
            )
        )
        procs[-1].start()
        pids["hakeeper"] = procs[-1].pid or 0
        for target in ports.values():
            for port in target.values():
                wait_http(port)
        rows: list[Row] = []
        for scenario, mode, close in SCENARIOS:
            if args.scenario and scenario not in args.scenario:
                continue
            results: dict[str, list[WrkResult]] = {"haproxy": [], "hakeeper": []}
            for _ in range(args.runs):
                for target in ("haproxy", "hakeeper"):
                    pid = pids[target]
                    results[target].append(run_wrk(ports[target][mode], close, args.duration, pid))
            ha, hk = median(results["haproxy"]), median(results["hakeeper"])
            rows.append(
                Row(
                    scenario,
                    ha,
                    hk,
                    hk.rps / ha.rps if ha.rps else 0.0,
                    hk.p99_ms / ha.p99_ms if ha.p99_ms else 0.0,
                    GOALS[scenario],
                )
            )
        load = os.getloadavg()
        if args.json:
            doc = {
                "duration_s": args.duration,
                "runs": args.runs,
                "loadavg": load,
                "rows": [asdict(r) for r in rows],
            }
            print(json.dumps(doc, indent=2))
        else:
            print(f"wrk -t1 -c50 -d{args.duration}s, medians of {args.runs}; loadavg {load}")
            print(
                f"{'scenario':<15}{'HAProxy req/s':>14}{'p50':>8}{'p99':>8}"
                f"{'hakeeper req/s':>16}{'p50':>8}{'p99':>8}{'ratio':>7}{'p99 x':>7}{'goal':>6}"
                f"{'CPU us/req HAProxy':>20}{'hakeeper':>10}"
            )
            for r in rows:
                goal = f"{r.goal:.2f}" if r.goal else "-"
                print(
                    f"{r.scenario:<15}{r.haproxy.rps:>14.0f}{r.haproxy.p50_ms:>8.2f}"
                    f"{r.haproxy.p99_ms:>8.2f}{r.hakeeper.rps:>16.0f}{r.hakeeper.p50_ms:>8.2f}"
                    f"{r.hakeeper.p99_ms:>8.2f}{r.ratio_rps:>7.2f}{r.ratio_p99:>7.2f}{goal:>6}"
                    f"{r.haproxy.cpu_us:>20.1f}{r.hakeeper.cpu_us:>10.1f}"
                )
            errors = sum(r.hakeeper.errors + r.haproxy.errors for r in rows)
            print(f"(latencies in ms; errors seen by wrk: {errors})")
        return 0
    except (OSError, subprocess.SubprocessError):
        for proc in procs:
            print(f"--- {proc.name} (running={proc.running}):\n{proc.log_tail()}", file=sys.stderr)
        raise
    finally:
        for proc in reversed(procs):
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
