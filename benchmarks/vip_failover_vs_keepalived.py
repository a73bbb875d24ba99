"""Client-observed VIP failover: hakeeper (default, fast) against keepalived, in one lab run.

One namespace lab (`hakeeper.lab.netns_lab`: three hosts and a client cabled to a bridge in
its own switch namespace; needs root) serves every trial. The same probe (`VipWatch`: a GET
to ``http://VIP:8080/`` every 10 ms from the client namespace, each request its own 200 ms
timeout) and the same sampler (which hosts hold the VIP, every 10 ms) watch each trial.
Outage = last good answer before the fault to the first good answer to a request sent
after it. Trials are interleaved (one of each setting per round), each on a fresh cluster.

Settings:
- hakeeper ``default``, ``fast`` and ``fast`` with ``[fencing] suspect_after = 0.3`` (fence
  a member whose renewals stopped 0.3 s ago, then recover, before its 1 s lease expires): a
  fresh 3-node cluster (embedded Raft, ``vip`` on eth0
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
#: setting -> (profile, [fencing] suspect_after): "+suspect" fences a member whose renewals
#: stopped that long, before its lease expires (hakeeper.runtime.suspicion).
HAKEEPER: dict[str, tuple[str, float | None]] = {
    "hakeeper default": ("default", None),
    "hakeeper fast": ("fast", None),
    "hakeeper fast+suspect 0.3s": ("fast", 0.3),
}
KEEPALIVED = {"keepalived advert_int 1 (VRRPv2)": 1.0, "keepalived advert_int 0.1 (VRRPv3)": 0.1}
ANCHOR_MS = {"keepalived advert_int 1 (VRRPv2)": 3097, "keepalived advert_int 0.1 (VRRPv3)": 287}


@dataclass(frozen=True, slots=True)
class Trial:
    setting: str
    fault: str
    outage: float | None
    failback_gap: float | None
    dual_samples: int
    samples: int
    failures: int
    served_by: str


@dataclass(frozen=True, slots=True)
class Fault:
    """What to do to n1, and how to bring it back (None: watch for DUAL_WINDOW instead)."""

    name: str
    inject: Callable[[], None]
    restore: Callable[[], None] | None


def watch_fault(lab: NetnsLab, setting: str, fault: Fault) -> Trial:
    """Wait for the VIP on n1, watch, inject the fault, wait for service; then restore n1
    and wait for the VIP to come back to it (failback), or, for a fault with no restore,
    watch for ``DUAL_WINDOW`` while the old holder may answer on."""
    lab.wait(f"{setting}: the VIP on n1", lambda: lab.holders() == ["n1"], START_LIMIT)
    failback: float | None = None
    with VipWatch(lab.layout, HTTP_PORT) as watch:
        if watch.wait_served_after(time.monotonic(), START_LIMIT) is None:
            raise RuntimeError(f"{setting}: the client never reached the VIP")
        time.sleep(BEFORE_FAULT)
        fault.inject()
        fault_at = time.monotonic()
        if fault.restore is None:
            time.sleep(DUAL_WINDOW)
        else:
            lab.wait(
                f"{setting}: the VIP off n1", lambda: "n1" not in lab.holders(), RECOVERY_LIMIT
            )
            if watch.wait_served_after(fault_at, RECOVERY_LIMIT) is None:
                raise RuntimeError(f"{setting}: no answer {RECOVERY_LIMIT}s after the fault")
            time.sleep(AFTER_RECOVERY)
            healed = time.monotonic()
            fault.restore()
            lab.wait(f"{setting}: the VIP back on n1", lambda: lab.holders() == ["n1"], START_LIMIT)
            time.sleep(AFTER_RECOVERY)
            failback = watch.longest_gap(healed, time.monotonic())
        end = time.monotonic()
    report = watch.report(fault_at)
    # When only the software dies, the old holder may answer on: the figure is then the
    # longest silence the client saw after the fault.
    outage = report.outage if fault.restore is not None else watch.longest_gap(fault_at, end)
    return Trial(setting, fault.name, outage, failback, report.dual_samples, report.samples,
                 report.failures, report.served_by_after)  # fmt: skip


def hakeeper_trial(lab: NetnsLab, setting: str, fault_name: str) -> Trial:
    profile, suspect_after = HAKEEPER[setting]
    lab.start_cluster(profile, suspect_after=suspect_after)
    faults = {
        "node crash": Fault("node crash", lambda: lab.crash("n1"), lambda: lab.heal("n1")),
        "isolation": Fault("isolation", lambda: lab.isolate("n1"), lambda: lab.heal("n1")),
        "process only": Fault("process only", lambda: _kill_agent(lab, "n1"), None),
    }
    try:
        return watch_fault(lab, setting, faults[fault_name])
    finally:
        lab.stop_cluster()


def _kill_agent(lab: NetnsLab, node: str) -> None:
    ref = lab.agents[node]
    if ref.alive():
        os.kill(ref.pid, signal.SIGKILL)


def keepalived_trial(lab: NetnsLab, setting: str, fault_name: str) -> Trial:
    cluster = KeepalivedCluster(lab, KEEPALIVED[setting])
    cluster.start()

    def crash() -> None:
        cluster.crash_vrrp("n1")
        lab.crash("n1")

    faults = {
        "node crash": Fault("node crash", crash, lambda: cluster.reboot("n1")),
        "isolation": Fault("isolation", lambda: lab.isolate("n1"), lambda: lab.plug("n1")),
        "process only": Fault("process only", lambda: cluster.crash_vrrp("n1"), None),
    }
    try:
        return watch_fault(lab, setting, faults[fault_name])
    finally:
        cluster.stop()


def _line(trial: Trial) -> str:
    def ms(value: float | None) -> str:
        return f"{value * 1000:6.0f} ms" if value is not None else "     -   "

    dual = f"{trial.dual_samples}/{trial.samples}"
    return (f"{trial.setting:<36} {trial.fault:<13} outage {ms(trial.outage)} "
            f"failback gap {ms(trial.failback_gap)} dual {dual}")  # fmt: skip


def run_trials(lab: NetnsLab, trials: int, isolation_trials: int) -> list[Trial]:
    out: list[Trial] = []
    settings = [*HAKEEPER, *KEEPALIVED]
    plan = [("node crash", trials), ("isolation", isolation_trials), ("process only", 1)]
    for fault_name, rounds in plan:
        for round_ in range(rounds):
            for setting in settings:  # interleaved, so machine noise spreads over all
                if fault_name == "process only" and setting == "hakeeper default":
                    continue  # same mechanism as fast, only slower
                runner = hakeeper_trial if setting in HAKEEPER else keepalived_trial
                trial = runner(lab, setting, fault_name)
                out.append(trial)
                print(f"{round_ + 1}/{rounds} {_line(trial)}", file=sys.stderr, flush=True)
    return out


def summary(trials: list[Trial]) -> dict[str, dict[str, object]]:
    table: dict[str, dict[str, object]] = {}
    for trial in trials:
        key = f"{trial.setting} | {trial.fault}"
        row = table.setdefault(
            key, {"outages_ms": [], "failback_gaps_ms": [], "dual_samples": 0, "samples": 0}
        )
        if trial.outage is not None:
            row["outages_ms"].append(round(trial.outage * 1000))  # type: ignore[attr-defined]
        if trial.failback_gap is not None:
            row["failback_gaps_ms"].append(round(trial.failback_gap * 1000))  # type: ignore[attr-defined]
        row["dual_samples"] = int(str(row["dual_samples"])) + trial.dual_samples
        row["samples"] = int(str(row["samples"])) + trial.samples
    for row in table.values():
        values = row["outages_ms"]
        assert isinstance(values, list)
        if values:
            row["median_ms"] = statistics.median(values)
            row["min_ms"], row["max_ms"] = min(values), max(values)
        gaps = row["failback_gaps_ms"]
        assert isinstance(gaps, list)
        row["failback_median_ms"] = statistics.median(gaps) if gaps else None
    return table


def ratios(table: dict[str, dict[str, object]]) -> dict[str, float]:
    def median(setting: str) -> float:
        return float(str(table[f"{setting} | node crash"]["median_ms"]))

    k1, k01 = list(KEEPALIVED)
    return {
        "hakeeper default / keepalived advert_int 1": median("hakeeper default") / median(k1),
        "hakeeper fast / keepalived advert_int 0.1": median("hakeeper fast") / median(k01),
        "hakeeper fast+suspect 0.3s / keepalived advert_int 0.1": (
            median("hakeeper fast+suspect 0.3s") / median(k01)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--isolation-trials", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root: the lab is made of network namespaces")
    if shutil.which("keepalived") is None:
        sys.exit("keepalived is not installed (Debian package keepalived; make bench-deps)")
    folder = Path(tempfile.mkdtemp(prefix="hk-bench-vip-"))
    lab = NetnsLab.create(folder, nodes=3, client=True, start_agents=False)
    try:
        trials = run_trials(lab, args.trials, args.isolation_trials)
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
    print(f"{'setting | fault':<58}{'median ms':>10}{'min':>7}{'max':>7}{'failback':>10}"
          f"{'dual/samples':>15}")  # fmt: skip
    for key, row in table.items():
        if "median_ms" in row:
            figures = f"{row['median_ms']:>10.0f}{row['min_ms']:>7}{row['max_ms']:>7}"
        else:
            figures = f"{'-':>10}{'-':>7}{'-':>7}"
        gap = row["failback_median_ms"]
        figures += f"{gap:>10.0f}" if isinstance(gap, int | float) else f"{'-':>10}"
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
