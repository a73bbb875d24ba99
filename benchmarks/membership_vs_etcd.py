"""Client-observed write outage during membership changes: embedded Raft vs etcd.

Three members on loopback and a client that starts a write every 10 ms (each its own task
and deadline). Per engine, in one run: add a fourth member, remove it again, then replace a
SIGKILLed member by a fresh one (remove the dead one, add the new one). Outage of a change =
the longest gap between acknowledged writes from its start until 0.5 s after it returned.
Embedded Raft: learner first (``coord member --join``) then `add_member`; `remove_member`.
etcd: ``etcdctl member add`` then start the member (``--initial-cluster-state existing``);
``etcdctl member remove``. Both with their default timings; ratio Raft/etcd per change.

    .venv/bin/python benchmarks/membership_vs_etcd.py [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from hakeeper.coord.base import Coordinator
from hakeeper.errors import CoordError
from hakeeper.lab.etcd_cluster import EtcdCluster
from hakeeper.lab.raft_cluster import RaftCluster

PROBE_INTERVAL = 0.010
WRITE_DEADLINE = 5.0
SETTLE = 0.5
# etcd refuses a change until every member has been connected for 5 s (its health interval);
# both engines get the same pause before each change, outside the measurement.
QUIET = 6.0
CHANGE_LIMIT = 120.0


class Probe:
    def __init__(self, coord: Coordinator) -> None:
        self.coord = coord
        self.acks: list[float] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None

    async def _write(self, i: int) -> None:
        with contextlib.suppress(CoordError, TimeoutError):
            async with asyncio.timeout(WRITE_DEADLINE):
                await self.coord.put(f"/bench/{i % 1000}", b"x")
            self.acks.append(time.monotonic())

    async def _run(self) -> None:
        for i in range(10_000_000):
            task = asyncio.create_task(self._write(i))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            await asyncio.sleep(PROBE_INTERVAL)

    def start(self) -> None:
        self._loop = asyncio.create_task(self._run())

    async def stop(self) -> None:
        for task in [self._loop, *self._tasks]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in [self._loop, *self._tasks] if t), return_exceptions=True)

    def outage(self, start: float, end: float) -> float:
        before = [t for t in self.acks if t < start]
        times = ([max(before)] if before else []) + sorted(
            t for t in self.acks if start <= t <= end
        )
        return max((b - a for a, b in itertools.pairwise(times)), default=end - start)


async def measure(probe: Probe, change: Callable[[], Awaitable[Any]]) -> float:
    start = time.monotonic()
    async with asyncio.timeout(CHANGE_LIMIT):
        await change()
    end = time.monotonic() + SETTLE
    await asyncio.sleep(SETTLE)
    return probe.outage(start, end)


async def raft_run(base: Path) -> dict[str, float]:
    cluster = RaftCluster(3, base_dir=base)
    await cluster.start()
    try:
        client = await cluster.client()
        probe = Probe(client)
        probe.start()
        await asyncio.sleep(QUIET)
        out: dict[str, float] = {}

        async def add() -> str:
            name = cluster.start_learner()
            await client.add_member(cluster.address(name), timeout=CHANGE_LIMIT)
            return name

        new = ""

        async def do_add() -> None:
            nonlocal new
            new = await add()

        out["add"] = await measure(probe, do_add)
        await asyncio.sleep(QUIET)

        async def remove() -> None:
            await client.remove_member(cluster.address(new), timeout=CHANGE_LIMIT)
            await cluster.stop(new)
            cluster.forget(new)

        out["remove"] = await measure(probe, remove)
        await asyncio.sleep(QUIET)
        cluster.kill("m3")
        await asyncio.sleep(QUIET)

        async def replace() -> None:
            await client.remove_member(cluster.address("m3"), timeout=CHANGE_LIMIT)
            cluster.forget("m3")
            await add()

        out["replace"] = await measure(probe, replace)
        await probe.stop()
        return out
    finally:
        await cluster.close()


async def etcd_run(base: Path) -> dict[str, float]:
    cluster = EtcdCluster(3, base_dir=base)
    await cluster.start()
    try:
        client = await cluster.client()
        probe = Probe(client)
        probe.start()
        await asyncio.sleep(QUIET)
        out = {"add": await measure(probe, lambda: cluster.member_add("e4"))}
        await asyncio.sleep(QUIET)

        async def remove() -> None:
            await cluster.member_remove("e4")
            await cluster.stop("e4")

        out["remove"] = await measure(probe, remove)
        await asyncio.sleep(QUIET)
        cluster.kill("e3")
        await asyncio.sleep(QUIET)

        async def replace() -> None:
            await cluster.member_remove("e3")
            await cluster.member_add("e5")

        out["replace"] = await measure(probe, replace)
        await probe.stop()
        return out
    finally:
        await cluster.close()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hk-membership-") as tmp:
        raft = await raft_run(Path(tmp) / "raft")
        etcd = await etcd_run(Path(tmp) / "etcd")
    ratios = {k: raft[k] / etcd[k] if etcd[k] > 0 else float("inf") for k in raft}
    if args.json:
        print(json.dumps({"raft": raft, "etcd": etcd, "ratio": ratios}, indent=2))
        return 0
    print("write outage during a membership change (s), 3 members on loopback, one run")
    print(f"{'change':<8} {'raft':>8} {'etcd':>8} {'raft/etcd':>10}")
    for k in raft:
        print(f"{k:<8} {raft[k]:>8.3f} {etcd[k]:>8.3f} {ratios[k]:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
