"""The lab's power switch: when a host's processes count as off."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from hakeeper.lab.netns_fence import dying, kill_all_in, pids_in
from tests.lab.conftest import throwaway_namespace

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(SLEEPER)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_running_process_is_not_dying(sleeper: subprocess.Popen[bytes]) -> None:
    assert not dying(sleeper.pid)


def test_a_sigkilled_process_is_dying_before_it_is_reaped(
    sleeper: subprocess.Popen[bytes],
) -> None:
    os.kill(sleeper.pid, signal.SIGKILL)
    assert dying(sleeper.pid)  # pending, exiting or a zombie: never running again


def test_a_vanished_process_is_dying() -> None:
    proc = subprocess.Popen(SLEEPER)
    proc.kill()
    proc.wait()
    assert dying(proc.pid)


@pytest.fixture
def namespace() -> Iterator[str]:
    with throwaway_namespace("fence") as name:
        yield name


def test_a_power_fence_is_done_once_every_process_there_is_dying(namespace: str) -> None:
    procs = [subprocess.Popen(["ip", "netns", "exec", namespace, *SLEEPER]) for _ in range(3)]
    try:
        for _ in range(200):
            if len(pids_in(namespace)) == 3:
                break
            time.sleep(0.05)
        assert len(pids_in(namespace)) == 3
        kill_all_in(namespace, until_gone=False)
        assert all(dying(pid) for pid in pids_in(namespace))
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
