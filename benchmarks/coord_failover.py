"""Client-observed write outage when the consensus leader is killed: embedded Raft vs etcd.

Three members on loopback; a client starts a write every 10 ms (each its own task and
deadline, so one stuck write does not hide the next); ``kill -9`` of the consensus leader;
outage = first acknowledged write after the kill minus last acknowledged write before it.
Fresh cluster per trial. Prints median/min/max per engine and the ratio against etcd with
its default timings (heartbeat 100 ms, election 1000 ms), measured in the same run.

    .venv/bin/python benchmarks/coord_failover.py [--trials 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hakeeper.errors import CoordError
from hakeeper.lab.raft_cluster import RaftCluster
from hakeeper.model.timing import PROFILES

PROBE_INTERVAL = 0.010
WRITE_DEADLINE = 5.0
BEFORE_KILL = 1.0
AFTER_RECOVERY = 1.0
TRIAL_LIMIT = 20.0


@dataclass(frozen=True)
class Engine:
    label: str
    backend: str
    profile: str = "default"

    def cluster(self, base_dir: Path) -> Any:
        if self.backend == "raft":
            return RaftCluster(3, base_dir=base_dir, timing=PROFILES[self.profile])
        from hakeeper.lab.etcd_cluster import EtcdCluster

        return EtcdCluster(3, base_dir=base_dir)


async def one_trial(engine: Engine, base_dir: Path) -> float:
    cluster = engine.cluster(base_dir)
    await cluster.start()
    try:
        client = await cluster.client()
        acks: list[float] = []
        pending: set[asyncio.Task[None]] = set()

        async def write(i: int) -> None:
            try:
                await asyncio.wait_for(client.put("/bench/probe", str(i).encode()), WRITE_DEADLINE)
            except (CoordError, TimeoutError):
                return
            acks.append(time.monotonic())

        leader = await cluster.leader()
        loop = asyncio.get_running_loop()
        start = loop.time()
        killed_at: float | None = None
        i = 0
        while loop.time() - start < TRIAL_LIMIT:
            task = asyncio.create_task(write(i))
            pending.add(task)
            task.add_done_callback(pending.discard)
            i += 1
            now = time.monotonic()
            if killed_at is None and loop.time() - start >= BEFORE_KILL:
                cluster.kill(leader)
                killed_at = now
            if killed_at is not None and any(a > killed_at for a in acks):
                first_after = min(a for a in acks if a > killed_at)
                if now - first_after > AFTER_RECOVERY:
                    break
            await asyncio.sleep(PROBE_INTERVAL)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        assert killed_at is not None
        before = [a for a in acks if a <= killed_at]
        after = [a for a in acks if a > killed_at]
        if not before or not after:
            raise RuntimeError(f"{engine.label}: no writes acknowledged around the kill")
        return min(after) - max(before)
    finally:
        await cluster.close()


async def run(engines: list[Engine], trials: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {e.label: [] for e in engines}
    for trial in range(trials):
        for engine in engines:  # interleaved, so machine noise spreads over every engine
            base = Path(tempfile.mkdtemp(prefix=f"hk-bench-{engine.backend}-"))
            try:
                outage = await one_trial(engine, base)
            finally:
                shutil.rmtree(base, ignore_errors=True)
            results[engine.label].append(outage)
            print(f"trial {trial + 1}/{trials} {engine.label:<22} outage {outage * 1000:7.0f} ms",
                  file=sys.stderr)  # fmt: skip
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    engines = [
        Engine("raft (default profile)", "raft", "default"),
        Engine("raft (fast profile)", "raft", "fast"),
    ]
    if shutil.which("etcd"):
        engines.append(Engine("etcd (defaults)", "etcd"))
    else:
        print("etcd not installed: `make bench` installs it as root", file=sys.stderr)
    results = asyncio.run(run(engines, args.trials))
    medians = {label: statistics.median(v) for label, v in results.items()}
    anchor = medians.get("etcd (defaults)")
    if args.json:
        print(json.dumps({"trials": results, "median": medians, "anchor": anchor}, indent=2))
        return
    print(f"\nclient-observed write outage after kill -9 of the consensus leader, {args.trials} "
          "trials, writes every 10 ms")  # fmt: skip
    print(f"{'engine':<24}{'median ms':>10}{'min ms':>9}{'max ms':>9}{'vs etcd':>9}")
    for label, values in results.items():
        ratio = f"{medians[label] / anchor:.2f}x" if anchor else "n/a"
        print(
            f"{label:<24}{medians[label] * 1000:>10.0f}{min(values) * 1000:>9.0f}"
            f"{max(values) * 1000:>9.0f}{ratio:>9}"
        )


if __name__ == "__main__":
    main()
