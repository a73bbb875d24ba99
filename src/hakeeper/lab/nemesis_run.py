"""One nemesis run on a lab running the nemesis stack: plan, workloads, faults, history.

`run_nemesis` waits for the stack to serve, starts the workloads, then walks the plan: at
each fault's planned time (later if the cluster has not recovered from the previous one:
it is given up to `SETTLE_TIMEOUT`, healed again meanwhile) it injects the fault's parts,
holds, undoes them and leaves the gap. At the end it stops the workloads, brings every
node back, saves the cluster's event log (`hakeeper events --json` inside a node) and
writes the history, RunInfo first. What it injected is recorded as it happened: a part
whose target was not found (no controller, no primary at that moment) is not recorded,
and is listed in `RunResult.missed`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hakeeper.errors import HakeeperError
from hakeeper.lab.fence_agent import FENCE_LOG
from hakeeper.lab.nemesis_faults import (
    PRIMARY,
    REPLICA,
    UNAVAILABLE,
    Faults,
    Injected,
    store_role,
)
from hakeeper.lab.nemesis_history import (
    EVENTS_FILE,
    FAULT_KINDS,
    HISTORY_FILE,
    Fault,
    Operation,
    Record,
    RunInfo,
    write_history,
)
from hakeeper.lab.nemesis_schedule import PlannedFault, plan
from hakeeper.lab.nemesis_stack import LogReader
from hakeeper.lab.nemesis_workloads import Workloads, http_through_vip
from hakeeper.lab.netns_lab import NetnsLab

SETTLE_TIMEOUT = 90.0
FIRST_SETTLE_TIMEOUT = 180.0
FIND_TIMEOUT = 10.0  # how long a fault's target (leader, controller, primary) is looked for

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class RunResult:
    run_dir: Path
    planned: tuple[str, ...]  # every part's kind, in plan order
    injected: tuple[str, ...]  # every part's kind actually injected
    missed: tuple[str, ...] = ()  # "kill-controller at 12.3 s: no controller found"
    unavailable: dict[str, str] = field(default_factory=dict)  # kind -> why never planned


def makeable_kinds() -> tuple[str, ...]:
    return tuple(k for k in FAULT_KINDS if k not in UNAVAILABLE)


def not_serving(lab: NetnsLab) -> str:
    """Why the stack does not serve as it did before any fault ("" when it does): every
    agent running, the session store whole again (`store_not_whole`), the VIP on one node,
    the balancer answering through it."""
    for node in lab.layout.nodes:
        state = lab.agent_state(node)
        if state != "running":
            return f"the agent of {node} is {state}"
    why = store_not_whole({node: store_role(lab, node) for node in lab.layout.nodes})
    if why:
        return why
    holders = lab.holders()
    if len(holders) != 1:
        return f"the VIP is held by {', '.join(holders) or 'no node'}"
    if not http_through_vip(lab):
        return "no HTTP answer through the VIP's balancer"
    # Last, as it costs a process: a restarted agent answers before the cluster has taken
    # its node back (its old lease may still expire and get it fenced), and a fault then
    # would take a second node out.
    offline = nodes_not_online(lab)
    if offline:
        return f"the cluster does not count {', '.join(offline)} online"
    return ""


def store_not_whole(roles: dict[str, tuple[str, int] | None]) -> str:
    """Why the session store does not hold every node's copy again ("" when it does): one
    primary, and every other node a replica holding the primary's log epoch.

    A restarted store answers as an empty replica at once, and a replica keeps answering
    while no primary exists (its keeper refused to promote). Counting those as recovered
    let the next fault take the one node left with the data (the fifth 1-hour run lost 23
    keys so): a replica holds the primary's epoch only once it has installed its copy.
    """
    answered = {n: r for n, r in roles.items() if r is not None and r[0] in (PRIMARY, REPLICA)}
    silent = [n for n in roles if n not in answered]
    if silent:
        return f"no store serving on {', '.join(silent)}"
    primaries = [n for n, (role, _) in answered.items() if role == PRIMARY]
    if len(primaries) != 1:
        return f"the store has {len(primaries)} primaries ({', '.join(primaries) or 'none'})"
    epoch = answered[primaries[0]][1]
    behind = [n for n, (_, log_epoch) in answered.items() if log_epoch != epoch]
    if behind:
        return f"no copy of the primary's epoch-{epoch} log yet on {', '.join(behind)}"
    return ""


def nodes_not_online(lab: NetnsLab) -> list[str]:
    """Nodes `hakeeper status --json` (asked inside a running node) does not call online."""
    argv = [sys.executable, "-m", "hakeeper", "status", "--json", "--config", str(lab.config_path)]
    for node in lab.layout.nodes:
        try:
            done = lab.exec(node, argv, timeout=30)
            report = json.loads(done.stdout)
        except (subprocess.TimeoutExpired, ValueError):
            continue
        return [n["name"] for n in report.get("nodes", []) if n.get("state") != "online"]
    return list(lab.layout.nodes)


def settle(lab: NetnsLab, faults: Faults, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    why = ""
    while time.monotonic() < deadline:
        faults.recover_all()
        why = not_serving(lab)
        if not why:
            return
        time.sleep(0.5)
    raise HakeeperError(
        f"the stack did not serve again within {timeout:g}s: {why}; the agents' logs:\n"
        f"{lab.tails()}"
    )


def run_nemesis(
    lab: NetnsLab,
    run_dir: Path,
    *,
    seed: int,
    duration: float,
    progress: Progress = lambda text: None,
    pace: str | None = None,
) -> RunResult:
    """``pace``: the profile whose hold times and gaps the plan uses (default: the lab's)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    logs = LogReader(lab)
    faults = Faults(lab, logs)
    nodes = len(lab.layout.nodes)
    planned = plan(seed, duration, pace or lab.profile, kinds=makeable_kinds(), nodes=nodes)
    progress(f"planned {len(planned)} faults over {duration:g}s (seed {seed})")
    progress("waiting for the stack to serve")
    settle(lab, faults, FIRST_SETTLE_TIMEOUT)
    workloads = Workloads(lab, logs, seed=seed, max_seconds=duration * 3 + 600)
    records: list[Record] = []
    injected: list[str] = []
    missed: list[str] = []
    started = time.monotonic()
    info = RunInfo(seed, duration, lab.profile, lab.layout.nodes, started)
    workloads.start()
    try:
        time.sleep(2.0)  # a baseline before the first fault
        started = time.monotonic()
        info = RunInfo(seed, duration, lab.profile, lab.layout.nodes, started)
        for number, fault in enumerate(planned):
            _wait_until(started + fault.at)
            try:
                settle(lab, faults, SETTLE_TIMEOUT)
            except HakeeperError as exc:
                # The history up to here is the finding: keep it for the checkers, whose
                # recovery bound names the fault the stack did not recover from.
                why = str(exc).split("; the agents' logs", 1)[0]
                missed.extend(f"{f.label}: not injected, {why}" for f in planned[number:])
                progress(f"stopping early: {why}")
                break
            done = _one(faults, fault, started, missed, progress)
            records.extend(done)
            injected.extend(f.kind for f in done)
        _wait_until(time.monotonic() + 3.0)
    finally:
        try:
            workloads.stop()
        finally:
            faults.recover_all()
    progress("every fault undone; reading every key once more")
    with contextlib.suppress(HakeeperError):  # unrecovered: the final reads say so
        settle(lab, faults, SETTLE_TIMEOUT)
    workloads.final_reads()
    records.extend(workloads.records)
    save_events(lab, run_dir / EVENTS_FILE)
    fences = lab.fence_dir / FENCE_LOG
    if fences.exists():
        shutil.copyfile(fences, run_dir / FENCE_LOG)
    ordered = sorted(records, key=_time_of)
    write_history(run_dir / HISTORY_FILE, [info, *ordered])
    progress(f"history written: {run_dir / HISTORY_FILE}")
    return RunResult(
        run_dir,
        tuple(p.kind for f in planned for p in f.parts),
        tuple(injected),
        tuple(missed),
        dict(UNAVAILABLE),
    )


def _one(
    faults: Faults, fault: PlannedFault, started: float, missed: list[str], progress: Progress
) -> list[Fault]:
    done: list[Injected] = []
    for part in fault.parts:
        got = faults.inject(part)
        deadline = time.monotonic() + FIND_TIMEOUT
        while got is None and time.monotonic() < deadline:
            time.sleep(0.5)  # e.g. an election under way: no single leader to name yet
            got = faults.inject(part)
        if got is None:
            missed.append(f"{part.kind} at {time.monotonic() - started:.1f}s: no target found")
        else:
            done.append(got)
    names = ", ".join(f"{d.kind} {' '.join(d.targets)}" for d in done) or "nothing"
    progress(f"t={time.monotonic() - started:6.1f}s fault {fault.group}: {names}")
    time.sleep(fault.hold)
    out = []
    for got in done:
        got.undo()
        out.append(Fault(got.kind, got.targets, got.start, time.monotonic(), fault.group))
    return out


def _time_of(record: Record) -> float:
    if isinstance(record, RunInfo):
        return record.started
    if isinstance(record, Operation | Fault):
        return record.start
    return record.time


def _wait_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def save_events(lab: NetnsLab, path: Path) -> None:
    """The cluster's event log, as `hakeeper events --json` prints it inside a node."""
    argv = [sys.executable, "-m", "hakeeper", "events", "--json", "--config", str(lab.config_path)]
    last = ""
    for node in lab.layout.nodes:
        done = lab.exec(node, argv, timeout=60)
        if done.returncode == 0:
            path.write_text(done.stdout)
            return
        last = done.stderr.strip()
    raise HakeeperError(f"could not read the cluster's event log from any node: {last}")
