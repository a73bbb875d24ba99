"""`hakeeper.runtime.memory_lock` with the real system call, in a process of its own."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Callable, Sequence

import pytest

LOCK_AND_REPORT = """
from hakeeper.runtime.memory_lock import lock_memory
print(lock_memory())
print([l for l in open("/proc/self/status") if l.startswith("VmLck:")][0].split()[1])
"""


def locked_in_child(
    wrapper: Sequence[str] = (), preexec: Callable[[], None] | None = None
) -> tuple[str, int]:
    """Whether a fresh interpreter locked its memory, and how much it holds locked (kB)."""
    done = subprocess.run(
        [*wrapper, sys.executable, "-c", LOCK_AND_REPORT], capture_output=True, text=True,
        timeout=60, check=True, preexec_fn=preexec,
    )  # fmt: skip
    answer, locked_kb = done.stdout.split()
    return answer, int(locked_kb)


@pytest.mark.skipif(os.geteuid() != 0, reason="locking memory needs root or CAP_IPC_LOCK")
def test_the_agent_s_pages_stay_locked_once_touched() -> None:
    answer, locked_kb = locked_in_child()

    assert answer == "True"
    assert locked_kb > 0


def no_memlock() -> None:
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (0, 0))


def test_a_refused_lock_is_reported_not_raised() -> None:
    # Root holds CAP_IPC_LOCK, which ignores the limit: drop it for the child.
    wrapper = ["setpriv", "--bounding-set=-ipc_lock", "--"] if os.geteuid() == 0 else []

    answer, locked_kb = locked_in_child(wrapper, no_memlock)

    assert (answer, locked_kb) == ("False", 0)
