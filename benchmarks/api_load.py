"""Do 100 dashboards slow down the lease renewals of the nodes that serve them?

A real three-node hakeeper cluster on loopback (``hakeeper.lab.loopback``, profile ``fast``:
a renewal every 200 ms, member TTL 1 s), each agent serving its REST API. Two phases of
equal length, in the same run:

- **quiet** (the anchor): no API client at all;
- **loaded**: 100 dashboard clients spread over the three nodes, each holding the live
  event stream open (``/v1/events/stream``) and reading ``/v1/status`` every second, while
  an operator's ``resource cleanup`` goes through the API every second (so the streams
  carry events and status documents, not only keep-alives).

The agents log each renewal at debug level (``event=member_lease_renewed at=… took=…``:
the keepalive round trip on the engine, and when it was sent); the figure is the p99 of
``took`` and of the lateness of each renewal (gap to the previous one minus the 200 ms
interval) per phase, and their ratio loaded/quiet. The machine is shared and noisy: run it
on a quiet machine for figures to quote, and read the ratio, not the absolute numbers.

    .venv/bin/python benchmarks/api_load.py [--seconds 20] [--clients 100] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from hakeeper.balancer.api_token import token_digest
from hakeeper.lab.loopback import LoopbackCluster, free_port_on, node_address

TOKEN = "b" * 43
RESOURCES = """
[resources.web]
agent = "ocf:heartbeat:Dummy"
ops.monitor = { interval = "1s", timeout = "10s" }
"""
RENEW_INTERVAL = 0.2  # the fast profile's
START_LIMIT = 60.0
_RENEWED = re.compile(r"event=member_lease_renewed node=(\S+) at=([0-9.]+) took=([0-9.]+)")


class DebugCluster(LoopbackCluster):
    """The lab cluster, its agents logging at debug level (the renewal lines)."""

    def agent_argv(self, node: str) -> list[str]:
        return [*super().agent_argv(node), "--log-level", "debug"]


def api_section(port: int) -> str:
    listen = ", ".join(f'n{i} = "{node_address(i)}:{port}"' for i in (1, 2, 3))
    return (
        f"\n[api]\nlisten_on = {{ {listen} }}\nmax_streams = 500\nmax_connections = 1000\n"
        f'[api.tokens]\nbench = {{ hash = "{token_digest(TOKEN)}", role = "operate" }}\n'
    )


def p99(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def renewals(cluster: LoopbackCluster) -> list[tuple[str, float, float]]:
    """(node, sent at, took) of every renewal the agents logged."""
    out = []
    for node in cluster.names:
        for line in cluster.log_path(node).read_text(errors="replace").splitlines():
            match = _RENEWED.search(line)
            if match:
                out.append((match[1], float(match[2]), float(match[3])))
    return out


def figures(rows: list[tuple[str, float, float]], start: float, end: float) -> dict[str, float]:
    took = [t * 1000 for _, at, t in rows if start <= at < end]
    late: list[float] = []
    for node in {n for n, _, _ in rows}:
        times = sorted(at for n, at, _ in rows if n == node and start <= at < end)
        late += [max(0.0, (b - a - RENEW_INTERVAL) * 1000) for a, b in itertools.pairwise(times)]
    return {
        "renewals": len(took),
        "took_p50_ms": statistics.median(took) if took else float("nan"),
        "took_p99_ms": p99(took),
        "took_max_ms": max(took, default=float("nan")),
        "late_p99_ms": p99(late),
        "late_max_ms": max(late, default=float("nan")),
    }


async def dashboard(
    session: aiohttp.ClientSession, url: str, stop: asyncio.Event, reads: list[float]
) -> None:
    """One open page: the stream held open and read, the status read every second."""
    headers = {"Authorization": f"Bearer {TOKEN}"}

    async def stream() -> None:
        async with session.get(url + "/v1/events/stream", headers=headers) as response:
            response.raise_for_status()
            while not stop.is_set():
                if not await response.content.readline():
                    return

    async def status() -> None:
        while not stop.is_set():
            began = time.monotonic()
            async with session.get(url + "/v1/status", headers=headers) as response:
                await response.read()
                if response.status == 200:
                    reads.append(time.monotonic() - began)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await stop.wait()

    streaming = asyncio.create_task(stream())
    try:
        await status()
    finally:
        streaming.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
            await streaming


async def operator(session: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> int:
    done = 0
    headers = {"Authorization": f"Bearer {TOKEN}"}
    while not stop.is_set():
        async with session.post(url + "/v1/resources/web/cleanup", json={}, headers=headers) as r:
            done += r.status == 200
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await stop.wait()
    return done


async def run(seconds: float, clients: int) -> dict[str, object]:
    base = Path(tempfile.mkdtemp(prefix="hk-api-load-"))
    try:
        port = free_port_on([node_address(i) for i in (1, 2, 3)])
        cluster = DebugCluster(base, RESOURCES + api_section(port))
        urls = [f"http://{cluster.address[n]}:{port}" for n in cluster.names]
        async with cluster:
            await cluster.wait_for("web runs", lambda o: bool(o.running_on("web")), START_LIMIT)
            quiet_start = time.monotonic()
            await asyncio.sleep(seconds)
            quiet_end = loaded_start = time.monotonic()
            stop, reads = asyncio.Event(), []
            limits = aiohttp.TCPConnector(limit=0)
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=30)
            async with aiohttp.ClientSession(connector=limits, timeout=timeout) as session:
                tasks = [
                    asyncio.create_task(dashboard(session, urls[i % 3], stop, reads))
                    for i in range(clients)
                ]
                acting = asyncio.create_task(operator(session, urls[0], stop))
                await asyncio.sleep(seconds)
                stop.set()
                results = await asyncio.gather(*tasks, acting, return_exceptions=True)
            loaded_end = time.monotonic()
            failed = [r for r in results if isinstance(r, BaseException)]
            rows = renewals(cluster)
        quiet = figures(rows, quiet_start, quiet_end)
        loaded = figures(rows, loaded_start, loaded_end)
        return {
            "seconds_per_phase": seconds,
            "clients": clients,
            "quiet": quiet,
            "loaded": loaded,
            "ratio_took_p99": loaded["took_p99_ms"] / quiet["took_p99_ms"],
            "ratio_late_p99": (loaded["late_p99_ms"] + 1) / (quiet["late_p99_ms"] + 1),
            "status_reads": len(reads),
            "status_read_p99_ms": p99([r * 1000 for r in reads]),
            "actions": results[-1] if isinstance(results[-1], int) else 0,
            "client_errors": [repr(f) for f in failed[:5]],
        }
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run(args.seconds, args.clients))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.clients} dashboard clients, {args.seconds:g} s per phase (noisy shared host)")
    for phase in ("quiet", "loaded"):
        f = result[phase]
        assert isinstance(f, dict)
        print(
            f"  {phase:6}: {f['renewals']} renewals, took p50 {f['took_p50_ms']:.1f} ms, "
            f"p99 {f['took_p99_ms']:.1f} ms, max {f['took_max_ms']:.1f} ms; "
            f"late p99 {f['late_p99_ms']:.1f} ms, max {f['late_max_ms']:.1f} ms"
        )
    print(
        f"  ratio loaded/quiet: renewal p99 {result['ratio_took_p99']:.2f}x, lateness p99 "
        f"{result['ratio_late_p99']:.2f}x (+1 ms each side)"
    )
    print(
        f"  status reads: {result['status_reads']}, p99 {result['status_read_p99_ms']:.0f} ms; "
        f"operator actions: {result['actions']}; client errors: {result['client_errors']}"
    )
    sys.exit(0)


if __name__ == "__main__":
    main()
