"""Exit a stopping balancer process at a deadline, whatever its background work waits on.

On SIGTERM a balancer closes its frontends at once (`Balancer.run`); then its background
tasks wind down. A clone backend's engine client may take seconds to close: closing joins
PySyncObj's tick thread (the nemesis runs saw balancer stops of 1.2-2.6 s with those joins
under way, and of 10 s cut by the process agent's SIGKILL, which held up the controller's
transition; what the tick thread did meanwhile was not captured, and the stack dump below
will say). Nothing of that needs finishing in a process that is exiting, so
``timeouts.hard_stop`` bounds it, as HAProxy's ``hard-stop-after`` bounds a stopping
process. A daemon timer thread: it fires even while the event loop, or the interpreter's
exit, waits on another thread.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import threading

log = logging.getLogger("hakeeper.balancer")


def arm(seconds: float) -> threading.Timer:
    """Exit this process ``seconds`` from now unless it has exited by then."""
    timer = threading.Timer(seconds, _exit_now, args=(seconds,))
    timer.name = "hard-stop"
    timer.daemon = True
    timer.start()
    return timer


def _exit_now(seconds: float) -> None:
    waiting = sorted(t.name for t in threading.enumerate() if t is not threading.current_thread())
    log.warning(
        "event=hard_stop after_s=%g threads=%r fix=%r",
        seconds,
        waiting,
        "none needed; the stacks below show what the stop waited on",
    )
    # Where every thread was: the one record that says what held the stop up.
    faulthandler.dump_traceback(all_threads=True)
    logging.shutdown()
    os._exit(0)
