"""Keep the agent's memory resident, as Corosync and keepalived keep theirs.

A page the kernel took back (the interpreter's and the libraries' code pages, on a host that
reclaims memory it thinks cold, as a VM's balloon or DAMON does) must be read again when the
code runs next, and the thread that faults holds the interpreter lock meanwhile: the whole
agent stops, renews nothing, and the others see it silent. In the namespace lab the VIP's
holder stopped for up to 0.45 s this way, inside a VIP monitor that runs once a second,
while another node booted, and was fenced on suspicion although alive.

``mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)`` keeps every page once touched and
populates nothing in advance, so the agent's resident size stays what it uses. Corosync
locks its memory by default for the same reason (``corosync -p`` opts out); keepalived has
``vrrp_no_swap``.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os

log = logging.getLogger(__name__)

MCL_CURRENT = 1
MCL_FUTURE = 2
MCL_ONFAULT = 4


def lock_memory() -> bool:
    """Lock this process's pages as they are touched; False (and a warning that says the
    fix) when the kernel refuses."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == 0:
        log.info("event=memory_locked pid=%d", os.getpid())
        return True
    err = ctypes.get_errno()
    log.warning(
        "event=memory_not_locked error=%s fix=%r",
        errno.errorcode.get(err, str(err)),
        "give the agent CAP_IPC_LOCK (the shipped unit does: CapabilityBoundingSet with "
        "CAP_IPC_LOCK, LimitMEMLOCK=infinity) or run it as root",
    )
    return False
