"""Running one action: it ends when the agent exits, not when its pipes close."""

from __future__ import annotations

import os
import time

from hakeeper.agents.runner import kill_group, run_action


async def test_a_daemon_left_on_the_agent_s_stdout_does_not_hold_the_action() -> None:
    # As pg_ctl start without -l: the postmaster keeps the agent's stdout open.
    started = time.monotonic()
    done = await run_action(
        ["sh", "-c", "sleep 60 & echo started"], env={"PATH": os.environ["PATH"]}, timeout=30
    )
    try:
        assert (done.rc, done.timed_out, done.stdout.strip()) == (0, False, "started")
        assert time.monotonic() - started < 10
    finally:
        kill_group(done.pgid)
