"""A stopping balancer process exits at its hard-stop deadline whatever it waits on."""

from __future__ import annotations

import subprocess
import sys

WAITS_A_MINUTE_AT_EXIT = """
import threading, time
from hakeeper.balancer import hard_stop
hard_stop.arm(0.3)
threading.Thread(target=time.sleep, args=(60,), name="slow-close").start()
"""


def test_a_process_held_by_a_thread_exits_at_the_deadline_naming_what_it_waited_on() -> None:
    # Without the hard stop the interpreter's exit waits a minute on the non-daemon thread,
    # as it waited on an engine client's tick thread.
    done = subprocess.run(
        [sys.executable, "-c", WAITS_A_MINUTE_AT_EXIT], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0
    assert "event=hard_stop" in done.stderr
    assert "slow-close" in done.stderr
