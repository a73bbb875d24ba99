"""Pre-vote on a real group: a member isolated for 30 s and healed causes no election.

Three ``hakeeper coord member`` processes, each in its own host of the network-namespace lab
(no agents), and a writer in the lab's client host. A follower's switch port goes down for
30 s: its TCP links stay "connected" for PySyncObj (it keeps a silent link for a minute), so
without pre-vote it became a candidate every election timeout, and its higher term deposed
the leader at the heal. Each member logs ``event=raft_term`` when its term or leader changes.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hakeeper.coord.raft_prevote import term_seen_in
from hakeeper.lab.cluster_secret import lab_secret_file
from hakeeper.lab.netns_lab import NetnsLab
from hakeeper.lab.netns_topology import CLIENT
from tests.lab.conftest import require_root

ISOLATION = 30.0
RAFT_PORT = 7420  # each lab host is its own namespace: no other test holds it there
WRITER = Path(__file__).with_name("raft_writer.py")


def term_lines(log: Path) -> list[tuple[int, str]]:
    """Every (term, leader) a member logged, in order ("-": no leader)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    seen = [term_seen_in(line) for line in text.splitlines()]
    return [(s.term, s.leader or "-") for s in seen if s is not None]


def wait_for(what: str, check: Callable[[], bool], timeout: float, tails: Callable[[], str]):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}\n{tails()}")
        time.sleep(0.2)


class Group:
    """The three members and the writer, their logs under the lab's directory."""

    def __init__(self, lab: NetnsLab) -> None:
        self.lab = lab
        self.nodes = lab.layout.nodes
        self.address = {n: f"{lab.layout.address(n)}:{RAFT_PORT}" for n in self.nodes}
        self.secret = lab_secret_file(lab.lab_dir)
        self.procs: list[subprocess.Popen[bytes]] = []

    def log(self, node: str) -> Path:
        return self.lab.lab_dir / f"{node}-raft.log"

    def start(self, host: str, argv: list[str], log: Path) -> None:
        with log.open("ab") as out:
            self.procs.append(
                subprocess.Popen(self.lab.netns_argv(host, argv), stdout=out, stderr=out)
            )

    def start_members(self) -> None:
        peers = ",".join(self.address.values())
        for node in self.nodes:
            self.start(node, [
                sys.executable, "-m", "hakeeper", "coord", "member",
                "--address", self.address[node], "--peers", peers,
                "--data-dir", str(self.lab.lab_dir / f"{node}-raft"), "--profile", "fast",
                "--secret-file", str(self.secret),
            ], self.log(node))  # fmt: skip

    def start_writer(self, seconds: float) -> Path:
        out = self.lab.lab_dir / "writer.jsonl"
        peers = ",".join(self.address.values())
        argv = [sys.executable, str(WRITER), peers, str(self.secret), str(seconds)]
        self.start(CLIENT, argv, out)
        return out

    def last(self, node: str) -> tuple[int, str] | None:
        lines = term_lines(self.log(node))
        return lines[-1] if lines else None

    def tails(self) -> str:
        parts = []
        for node in self.nodes:
            text = self.log(node).read_text(errors="replace") if self.log(node).exists() else ""
            parts.append(f"--- {node}\n" + "\n".join(text.splitlines()[-15:]))
        return "\n".join(parts)

    def stop(self) -> None:
        for proc in self.procs:  # only what this test started, by its own handle
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=15)


@pytest.fixture(scope="module")
def group() -> Iterator[Group]:
    require_root()
    folder = Path(tempfile.mkdtemp(prefix="hakeeper-prevote-test-"))
    try:
        lab = NetnsLab.create(folder, nodes=3, client=True, start_agents=False)
        made = Group(lab)
        try:
            made.start_members()
            yield made
        finally:
            made.stop()
            lab.down()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def writes(out: Path) -> list[tuple[float, bool]]:
    text = out.read_text() if out.exists() else ""
    rows = [json.loads(line) for line in text.splitlines() if line.startswith('{"at"')]
    return [(float(r["at"]), bool(r["ok"])) for r in rows]


def test_an_isolated_follower_healed_after_30s_changes_no_term_and_stalls_no_write(
    group: Group,
) -> None:
    def agreed() -> bool:
        seen = {group.last(n) for n in group.nodes}
        return len(seen) == 1 and None not in seen and next(iter(seen))[1] != "-"  # type: ignore[index]

    out = group.start_writer(seconds=ISOLATION + 150.0)  # it starts while the group elects
    wait_for("one leader all members agree on", agreed, 180.0, group.tails)
    term, leader = group.last(group.nodes[0])  # type: ignore[misc]
    follower = next(n for n in group.nodes if group.address[n] != leader)
    majority = [n for n in group.nodes if n != follower]
    wait_for("the writer's first writes", lambda: len(writes(out)) >= 20, 180.0, group.tails)
    before = {n: len(term_lines(group.log(n))) for n in group.nodes}

    isolated_at = time.monotonic()
    group.lab.isolate(follower)
    try:
        time.sleep(ISOLATION)  # the length of the isolation is what is tested
    finally:
        group.lab.plug(follower)
    healed_at = time.monotonic()
    # The healed member follows the same leader; writes go on some seconds past the heal.
    wait_for(f"{follower} to follow {leader} at term {term} again",
             lambda: group.last(follower) == (term, leader),
             30.0, group.tails)  # fmt: skip
    wait_for("writes past the heal", lambda: writes(out)[-1][0] > healed_at + 3.0, 30.0,
             group.tails)  # fmt: skip

    changes = {n: term_lines(group.log(n))[before[n] :] for n in group.nodes}
    for node in majority:
        assert changes[node] == [], f"{node} changed term or leader: {changes[node][:6]}..."
    # The isolated member lost its leader, but never raised its term.
    assert all(t == term for t, _ in changes[follower]), changes[follower]
    window = [(at, ok) for at, ok in writes(out) if isolated_at - 1.0 <= at]
    acknowledged = [at for at, ok in window if ok]
    stall = max(b - a for a, b in itertools.pairwise(acknowledged))
    print(f"longest write stall across isolation and heal: {stall:.3f}s "
          f"({len(acknowledged)} writes, {len(window) - len(acknowledged)} failed)")  # fmt: skip
    assert all(ok for _, ok in window), "a write failed while only a follower was cut off"
    assert stall < 3.0, f"writes stalled {stall:.2f}s"
