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
  process of the host SIGKILLed, its runtime addresses gone), in two kinds reported apart:
  "leader crash", the holder is also the embedded Raft's leader (the survivors must elect
  one before anything commits), and "follower crash", it is not. Before the fault the lab
  asks the engine who leads (`hakeeper.lab.raft_leader`) and, where needed, moves the VIP
  (``hakeeper resource move``) to that node or away from it; each trial also counts
  suspicion fences of nodes that did not crash (must be 0).
- keepalived 2.2 (Debian) ``advert_int 1`` (VRRPv2) and ``advert_int 0.1`` (VRRPv3), n1
  priority 200, n2 100, n3 50, the same web server on every host. Fault: node crash as
  shared/ANCHORS.md describes (parent SIGSTOPped, VRRP child SIGKILLed, parent SIGKILLed —
  no cleanup — then the same power cut).
- "process only": only the cluster software of the holder dies (keepalived as above; for
  hakeeper its agent is SIGKILLed), the host stays up with the VIP on its interface. One
  trial per setting, watched for 6 s: keepalived then holds the VIP on two hosts; hakeeper
  fences first. Its figure is the longest silence the client saw in that window.

    .venv/bin/python benchmarks/vip_failover_vs_keepalived.py [--trials 5] [--json]
        [--only "fast+suspect,advert_int 0.1"] [--isolation-trials 2] [--process-only-trials 1]
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
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from hakeeper.errors import HakeeperError
from hakeeper.lab.netns_keepalived import KeepalivedCluster
from hakeeper.lab.netns_lab import HTTP_PORT, NetnsLab
from hakeeper.lab.raft_leader import raft_leader
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
    #: the node crashed (the VIP holder) and the Raft leader just before (hakeeper only)
    target: str = "n1"
    raft_leader: str | None = None
    #: suspicion fences of nodes that did not crash (hakeeper.runtime.suspicion): must be 0
    wrongly_suspected: int = 0
    #: 1 when the trial never completed (no service again, or no steady start)
    failed: int = 0
    #: from the last good answer to the first sample with the VIP on another host: the
    #: outage less what the network and the client added (seconds)
    moved: float | None = None
    #: when the outage began, on the wall clock: to find the trial in the agents' logs
    #: (--keep), whose lines carry wall-clock times
    began_at: str = ""


@dataclass(frozen=True, slots=True)
class Fault:
    """What to do to the holder, and how to bring it back (None: watch DUAL_WINDOW instead)."""

    name: str
    inject: Callable[[], None]
    restore: Callable[[], None] | None


def watch_fault(lab: NetnsLab, setting: str, fault: Fault, node: str = "n1") -> Trial:
    """Wait for the VIP on ``node``, watch, inject the fault, wait for service; then restore
    ``node`` and wait for the VIP to come back to it (failback), or, for a fault with no
    restore, watch for ``DUAL_WINDOW`` while the old holder may answer on."""
    lab.wait(
        f"{setting}: the VIP on {node}",
        lambda n=node: lab.holders() == [n],  # type: ignore[misc]
        START_LIMIT,
    )
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
                f"{setting}: the VIP off {node}", lambda: node not in lab.holders(), RECOVERY_LIMIT
            )
            if watch.wait_served_after(fault_at, RECOVERY_LIMIT) is None:
                raise RuntimeError(f"{setting}: no answer {RECOVERY_LIMIT}s after the fault")
            time.sleep(AFTER_RECOVERY)
            healed = time.monotonic()
            fault.restore()
            lab.wait(
                f"{setting}: the VIP back on {node}", lambda: lab.holders() == [node], START_LIMIT
            )
            time.sleep(AFTER_RECOVERY)
            failback = watch.longest_gap(healed, time.monotonic())
        end = time.monotonic()
    report = watch.report(fault_at)
    last_good = max((r.done for r in watch.good() if r.sent < fault_at), default=fault_at)
    moved = watch.first_sample(fault_at, lambda s: bool(s.holders) and node not in s.holders)
    began = datetime.fromtimestamp(time.time() - (time.monotonic() - last_good), UTC)
    # When only the software dies, the old holder may answer on: the figure is then the
    # longest silence the client saw after the fault.
    outage = report.outage if fault.restore is not None else watch.longest_gap(fault_at, end)
    return Trial(setting, fault.name, outage, failback, report.dual_samples, report.samples,
                 report.failures, report.served_by_after, node,
                 moved=None if moved is None else moved.at - last_good,
                 began_at=began.strftime("%H:%M:%S.%f")[:-3])  # fmt: skip


def hakeeper_trial(lab: NetnsLab, setting: str, fault_name: str) -> Trial:
    profile, suspect_after = HAKEEPER[setting]
    lab.start_cluster(profile, suspect_after=suspect_after)
    try:
        node, leader = "n1", None
        if fault_name in ("leader crash", "follower crash"):
            node, leader = arrange(lab, setting, leader=fault_name == "leader crash")
        faults = {
            "leader crash": Fault("leader crash", lambda: lab.crash(node), lambda: lab.heal(node)),
            "follower crash": Fault(
                "follower crash", lambda: lab.crash(node), lambda: lab.heal(node)
            ),
            "isolation": Fault("isolation", lambda: lab.isolate(node), lambda: lab.heal(node)),
            "process only": Fault("process only", lambda: _kill_agent(lab, node), None),
        }
        # The agents' logs grow over the whole run: count only what this trial wrote.
        since = {n: lab.log_path(n).stat().st_size for n in lab.layout.nodes}
        trial = watch_fault(lab, setting, faults[fault_name], node)
        wrong = sum(_written_since(lab, n, since[n]).count(f"event=node_suspected node={o}")
                    for n in lab.layout.nodes for o in lab.layout.nodes if o != node)  # fmt: skip
        return replace(trial, raft_leader=leader, wrongly_suspected=wrong)
    finally:
        lab.stop_cluster()


def _written_since(lab: NetnsLab, node: str, offset: int) -> str:
    with lab.log_path(node).open(errors="replace") as log:
        log.seek(offset)
        return log.read()


def arrange(lab: NetnsLab, setting: str, *, leader: bool) -> tuple[str, str]:
    """Put the VIP on the Raft leader's node (``leader``) or on a follower; (holder, leader).
    The leader is asked again after a move: a trial starts only when the relation holds."""
    lab.wait(f"{setting}: the VIP on n1", lambda: lab.holders() == ["n1"], START_LIMIT)
    for _ in range(5):
        lab.wait(f"{setting}: one VIP holder", lambda: len(lab.holders()) == 1, START_LIMIT)
        holder, current = lab.holders()[0], raft_leader(lab)
        if (holder == current) == leader:
            return holder, current
        node = current if leader else next(n for n in lab.layout.nodes if n != current)
        _move_vip(lab, node)
        lab.wait(
            f"{setting}: the VIP on {node}",
            lambda n=node: lab.holders() == [n],  # type: ignore[misc]
            START_LIMIT,
        )
    raise RuntimeError(f"{setting}: the Raft leader kept changing while the trial was arranged")


def _move_vip(lab: NetnsLab, node: str) -> None:
    argv = [sys.executable, "-m", "hakeeper", "resource", "move", "vip", node,
            "--config", str(lab.config_path)]  # fmt: skip
    for _ in range(3):  # a loaded machine can time out the CLI's handshake: try again
        done = lab.exec(node, argv)
        if done.returncode == 0:
            return
    raise RuntimeError(f"moving the VIP to {node} failed: {done.stdout}{done.stderr}")


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
    where = f" {trial.target} (raft leader {trial.raft_leader})" if trial.raft_leader else ""
    return (f"{trial.setting:<36} {trial.fault:<14} outage {ms(trial.outage)} "
            f"(address moved {ms(trial.moved)}) failback gap {ms(trial.failback_gap)} "
            f"dual {dual}{where} wrongly suspected {trial.wrongly_suspected}"
            f" began {trial.began_at} UTC")  # fmt: skip


def run_trials(
    lab: NetnsLab, settings: list[str], trials: int, isolation_trials: int, process_only: int
) -> list[Trial]:
    out: list[Trial] = []
    plan = [("node crash", trials), ("isolation", isolation_trials),
            ("process only", process_only)]  # fmt: skip
    for fault_name, rounds in plan:
        for round_ in range(rounds):
            for setting in settings:  # interleaved, so machine noise spreads over all
                if fault_name == "process only" and setting == "hakeeper default":
                    continue  # same mechanism as fast, only slower
                for fault in _kinds(setting, fault_name):
                    runner = hakeeper_trial if setting in HAKEEPER else keepalived_trial
                    try:
                        trial = runner(lab, setting, fault)
                    except (RuntimeError, HakeeperError) as exc:
                        # A trial that never served again is a result, not a crash of the run.
                        print(f"{setting} {fault}: trial failed: {str(exc)[:300]}", file=sys.stderr)
                        trial = Trial(setting, fault, None, None, 0, 0, 0, "", failed=1)
                    out.append(trial)
                    print(f"{round_ + 1}/{rounds} {_line(trial)}", file=sys.stderr, flush=True)
    return out


def _kinds(setting: str, fault_name: str) -> list[str]:
    """A hakeeper node crash comes in two kinds: the holder leads the Raft, or it does not."""
    if fault_name == "node crash" and setting in HAKEEPER:
        return ["leader crash", "follower crash"]
    return [fault_name]


BOTH = "node crash (both kinds)"


def p90(values: list[int]) -> float:
    return (
        statistics.quantiles(values, n=10, method="inclusive")[-1] if len(values) > 1 else values[0]
    )


def summary(trials: list[Trial]) -> dict[str, dict[str, object]]:
    table: dict[str, dict[str, object]] = {}
    for trial in trials:
        keys = [f"{trial.setting} | {trial.fault}"]
        if trial.fault in ("leader crash", "follower crash"):
            keys.append(f"{trial.setting} | {BOTH}")  # the goal counts both kinds together
        for key in keys:
            row = table.setdefault(key, {"outages_ms": [], "failback_gaps_ms": [],
                                         "dual_samples": 0, "samples": 0,
                                         "wrongly_suspected": 0})  # fmt: skip
            if trial.outage is not None:
                row["outages_ms"].append(round(trial.outage * 1000))  # type: ignore[attr-defined]
            if trial.failback_gap is not None:
                row["failback_gaps_ms"].append(round(trial.failback_gap * 1000))  # type: ignore[attr-defined]
            row["dual_samples"] = int(str(row["dual_samples"])) + trial.dual_samples
            row["samples"] = int(str(row["samples"])) + trial.samples
            row["wrongly_suspected"] = int(str(row["wrongly_suspected"])) + trial.wrongly_suspected
            row["failed_trials"] = int(str(row.get("failed_trials", 0))) + trial.failed
    for row in table.values():
        values = row["outages_ms"]
        assert isinstance(values, list)
        if values:
            row["median_ms"] = statistics.median(values)
            row["p90_ms"] = round(p90(values))
            row["min_ms"], row["max_ms"] = min(values), max(values)
        gaps = row["failback_gaps_ms"]
        assert isinstance(gaps, list)
        row["failback_median_ms"] = statistics.median(gaps) if gaps else None
    return table


def ratios(table: dict[str, dict[str, object]]) -> dict[str, float]:
    """Each hakeeper crash row's median and p90 against its keepalived anchor's node-crash
    row of the same run (default against advert_int 1, the fast settings against 0.1)."""
    k1, k01 = list(KEEPALIVED)
    out: dict[str, float] = {}
    for key, row in table.items():
        setting, fault = key.split(" | ")
        anchor = table.get(f"{k1 if setting == 'hakeeper default' else k01} | node crash", {})
        if setting not in HAKEEPER or "crash" not in fault or "median_ms" not in anchor:
            continue
        if "median_ms" not in row:
            continue
        base_median, base_p90 = float(str(anchor["median_ms"])), float(str(anchor["p90_ms"]))
        label = f"{key} / {k1 if setting == 'hakeeper default' else k01}"
        out[f"{label}: median/median"] = float(str(row["median_ms"])) / base_median
        out[f"{label}: p90/median"] = float(str(row["p90_ms"])) / base_median
        out[f"{label}: p90/p90"] = float(str(row["p90_ms"])) / base_p90
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--isolation-trials", type=int, default=2)
    parser.add_argument("--process-only-trials", type=int, default=1)
    parser.add_argument(
        "--only", default="", help="comma-separated parts of setting names to run (default: all)"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the lab folder (agent logs)")
    args = parser.parse_args()
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    settings = [s for s in [*HAKEEPER, *KEEPALIVED] if not wanted or any(w in s for w in wanted)]
    if not settings:
        sys.exit(f"--only {args.only!r} names no setting of: {', '.join([*HAKEEPER, *KEEPALIVED])}")
    if os.geteuid() != 0:
        sys.exit("needs root: the lab is made of network namespaces")
    if shutil.which("keepalived") is None:
        sys.exit("keepalived is not installed (Debian package keepalived; make bench-deps)")
    folder = Path(tempfile.mkdtemp(prefix="hk-bench-vip-"))
    lab = NetnsLab.create(folder, nodes=3, client=True, start_agents=False)
    try:
        trials = run_trials(
            lab, settings, args.trials, args.isolation_trials, args.process_only_trials
        )
    finally:
        lab.down()
        if args.keep:
            print(f"lab folder kept: {folder}", file=sys.stderr)
        else:
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
    print(f"{'setting | fault':<62}{'median ms':>10}{'p90':>7}{'min':>7}{'max':>7}"
          f"{'failback':>10}{'dual/samples':>15}{'wrong fences':>14}")  # fmt: skip
    for key, row in table.items():
        if "median_ms" in row:
            figures = (f"{row['median_ms']:>10.0f}{row['p90_ms']:>7}{row['min_ms']:>7}"
                       f"{row['max_ms']:>7}")  # fmt: skip
        else:
            figures = f"{'-':>10}{'-':>7}{'-':>7}{'-':>7}"
        gap = row["failback_median_ms"]
        figures += f"{gap:>10.0f}" if isinstance(gap, int | float) else f"{'-':>10}"
        dual = f"{row['dual_samples']}/{row['samples']}"
        print(f"{key:<62}{figures}{dual:>15}{row['wrongly_suspected']!s:>14}"
              f"  failed trials {row['failed_trials']}")  # fmt: skip
    for name, value in rates.items():
        print(f"ratio {name}: {value:.2f}x")
    print(
        "goals: default below keepalived advert_int 1 (ratio < 1); fast within 2x of "
        "keepalived advert_int 0.1 (ratio <= 2); fast+suspect, both kinds: median <= 1.0x "
        "and p90 <= 1.5x of advert_int 0.1; zero dual-holder samples and zero wrong fences"
    )
    print(
        "anchors (shared/ANCHORS.md, node crash): keepalived advert_int 1: 3097 ms, "
        "advert_int 0.1: 287 ms"
    )
    print(f"load: {load}")


if __name__ == "__main__":
    main()
