"""Client-observed VIP failover: hakeeper (default, fast) against keepalived, in one lab run.

One namespace lab (`hakeeper.lab.netns_lab`: three hosts and a client cabled to a bridge in
its own switch namespace; needs root) serves every trial. The same probe (`VipWatch`: a GET
to ``http://VIP:8080/`` every 10 ms from the client namespace, each request its own 200 ms
timeout) and the same sampler (which hosts hold the VIP, every 10 ms) watch each trial.
Outage = last good answer before the fault to the first good answer to a request sent
after it. Trials are interleaved (one of each setting per round), each on a fresh cluster.

Settings:
- hakeeper ``default`` and ``fast``: a fresh 3-node cluster (embedded Raft, ``vip`` on eth0
  preferring n1, the web server as a clone, fencing through ``fence_hakeeper_lab`` with
  netns targets). Fault: node crash of the VIP holder (power cut: its cable pulled, every
  process of the host SIGKILLed, its runtime addresses gone).
- keepalived 2.2 (Debian) ``advert_int 1`` (VRRPv2) and ``advert_int 0.1`` (VRRPv3), n1
  priority 200, n2 100, n3 50, the same web server on every host. Fault: node crash as
  shared/ANCHORS.md describes (parent SIGSTOPped, VRRP child SIGKILLed, parent SIGKILLed —
  no cleanup — then the same power cut).
- "process only": only the cluster software of the holder dies (keepalived as above; for
  hakeeper its agent is SIGKILLed), the host stays up with the VIP on its interface. One
  trial per setting, watched for 6 s: keepalived then holds the VIP on two hosts; hakeeper
  fences first. Its figure is the longest silence the client saw in that window.

    .venv/bin/python benchmarks/vip_failover_vs_keepalived.py [--trials 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from hakeeper.lab.netns_keepalived import KeepalivedCluster
from hakeeper.lab.netns_lab import HTTP_PORT, NetnsLab
from hakeeper.lab.vip_watch import VipWatch

START_LIMIT = 60.0  # a cluster must put the VIP on n1 within this
RECOVERY_LIMIT = 30.0  # ...and serve again within this after the fault: every trial ends
BEFORE_FAULT = 1.0
AFTER_RECOVERY = 0.3
DUAL_WINDOW = 6.0  # "process only": how long to watch both holders after the fault
HAKEEPER = ("hakeeper default", "hakeeper fast")
KEEPALIVED = {"keepalived advert_int 1 (VRRPv2)": 1.0, "keepalived advert_int 0.1 (VRRPv3)": 0.1}
ANCHOR_MS = {"keepalived advert_int 1 (VRRPv2)": 3097, "keepalived advert_int 0.1 (VRRPv3)": 287}


@dataclass(frozen=True, slots=True)
class Trial:
    setting: str
    fault: str
    outage: float | None
    dual_samples: int
    samples: int
    failures: int
    served_by: str


def watch_fault(lab: NetnsLab, setting: str, fault_name: str, inject: Callable[[], None]) -> Trial:
    """Wait for the VIP on n1, watch, inject the fault, wait for service (or watch for
    ``DUAL_WINDOW`` when the old holder keeps answering), and report."""
    lab.wait(f"{setting}: the VIP on n1", lambda: lab.holders() == ["n1"], START_LIMIT)
    with VipWatch(lab.layout, HTTP_PORT) as watch:
        if watch.wait_served_after(time.monotonic(), START_LIMIT) is None:
            raise RuntimeError(f"{setting}: the client never reached the VIP")
        time.sleep(BEFORE_FAULT)
        inject()
        fault = time.monotonic()
        if fault_name == "node crash":
            if watch.wait_served_after(fault, RECOVERY_LIMIT) is None:
                raise RuntimeError(f"{setting}: no answer {RECOVERY_LIMIT}s after the fault")
            time.sleep(AFTER_RECOVERY)
        else:
            time.sleep(DUAL_WINDOW)
        end = time.monotonic()
    report = watch.report(fault)
    # When only the software dies, the old holder may answer on: the figure is then the
    # longest silence the client saw after the fault.
    outage = report.outage if fault_name == "node crash" else watch.longest_gap(fault, end)
    return Trial(setting, fault_name, outage, report.dual_samples, report.samples,
                 report.failures, report.served_by_after)  # fmt: skip


def hakeeper_trial(lab: NetnsLab, setting: str, fault_name: str) -> Trial:
    profile = setting.split()[-1]
    lab.start_cluster(profile)
    try:
        if fault_name == "node crash":
            return watch_fault(lab, setting, fault_name, lambda: lab.crash("n1"))
        return watch_fault(lab, setting, fault_name, lambda: _kill_agent(lab, "n1"))
    finally:
        lab.stop_cluster()


def _kill_agent(lab: NetnsLab, node: str) -> None:
    ref = lab.agents[node]
    if ref.alive():
        os.kill(ref.pid, signal.SIGKILL)


def keepalived_trial(lab: NetnsLab, setting: str, fault_name: str) -> Trial:
    cluster = KeepalivedCluster(lab, KEEPALIVED[setting])
    cluster.start()
    try:

        def inject() -> None:
            cluster.crash_vrrp("n1")
            if fault_name == "node crash":
                lab.crash("n1")

        return watch_fault(lab, setting, fault_name, inject)
    finally:
        cluster.stop()


def run_trials(lab: NetnsLab, trials: int) -> list[Trial]:
    out: list[Trial] = []
    settings = [*HAKEEPER, *KEEPALIVED]
    for round_ in range(trials):
        for setting in settings:  # interleaved, so machine noise spreads over all
            runner = hakeeper_trial if setting in HAKEEPER else keepalived_trial
            trial = runner(lab, setting, "node crash")
            out.append(trial)
            outage = f"{trial.outage * 1000:7.0f} ms" if trial.outage is not None else "   none"
            print(f"round {round_ + 1}/{trials} {setting:<36} outage {outage} "
                  f"dual {trial.dual_samples}", file=sys.stderr)  # fmt: skip
    for setting in ("hakeeper fast", *KEEPALIVED):
        runner = hakeeper_trial if setting in HAKEEPER else keepalived_trial
        trial = runner(lab, setting, "process only")
        out.append(trial)
        print(f"process only {setting:<36} dual {trial.dual_samples}/{trial.samples}",
              file=sys.stderr)  # fmt: skip
    return out


def summary(trials: list[Trial]) -> dict[str, dict[str, object]]:
    table: dict[str, dict[str, object]] = {}
    for trial in trials:
        key = f"{trial.setting} | {trial.fault}"
        row = table.setdefault(key, {"outages_ms": [], "dual_samples": 0, "samples": 0})
        if trial.outage is not None:
            row["outages_ms"].append(round(trial.outage * 1000))  # type: ignore[attr-defined]
        row["dual_samples"] = int(str(row["dual_samples"])) + trial.dual_samples
        row["samples"] = int(str(row["samples"])) + trial.samples
    for row in table.values():
        values = row["outages_ms"]
        assert isinstance(values, list)
        if values:
            row["median_ms"] = statistics.median(values)
            row["min_ms"], row["max_ms"] = min(values), max(values)
    return table


def ratios(table: dict[str, dict[str, object]]) -> dict[str, float]:
    def median(setting: str) -> float:
        return float(str(table[f"{setting} | node crash"]["median_ms"]))

    k1, k01 = list(KEEPALIVED)
    return {
        "hakeeper default / keepalived advert_int 1": median("hakeeper default") / median(k1),
        "hakeeper fast / keepalived advert_int 0.1": median("hakeeper fast") / median(k01),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root: the lab is made of network namespaces")
    if shutil.which("keepalived") is None:
        sys.exit("keepalived is not installed (Debian package keepalived; make bench-deps)")
    folder = Path(tempfile.mkdtemp(prefix="hk-bench-vip-"))
    lab = NetnsLab.create(folder, nodes=3, client=True, start_agents=False)
    try:
        trials = run_trials(lab, args.trials)
    finally:
        lab.down()
        shutil.rmtree(folder, ignore_errors=True)
    table = summary(trials)
    rates = ratios(table)
    load = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    if args.json:
        data = {"table": table, "ratios": rates, "anchors_ms": ANCHOR_MS,
                "trials": [asdict(t) for t in trials], "uptime": load}  # fmt: skip
        print(json.dumps(data, indent=2))
        return
    print(f"\nVIP failover seen by a client polling every 10 ms; {args.trials} trials per "
          "setting, interleaved, in one namespace lab")  # fmt: skip
    print(f"{'setting | fault':<58}{'median ms':>10}{'min':>7}{'max':>7}{'dual/samples':>15}")
    for key, row in table.items():
        if "median_ms" in row:
            figures = f"{row['median_ms']:>10.0f}{row['min_ms']:>7}{row['max_ms']:>7}"
        else:
            figures = f"{'-':>10}{'-':>7}{'-':>7}"
        print(f"{key:<58}{figures}{str(row['dual_samples']) + '/' + str(row['samples']):>15}")
    for name, value in rates.items():
        print(f"ratio {name}: {value:.2f}x")
    print(
        "goals: default below keepalived advert_int 1 (ratio < 1); fast within 2x of "
        "keepalived advert_int 0.1 (ratio <= 2); zero dual-holder samples for hakeeper"
    )
    print(
        "anchors (shared/ANCHORS.md, node crash): keepalived advert_int 1: 3097 ms, "
        "advert_int 0.1: 287 ms"
    )
    print(f"load: {load}")


if __name__ == "__main__":
    main()
