"""What ``/proc`` says about a process: enough to signal the very process we started.

Kept free of heavy imports: ``fence_hakeeper_lab`` uses it on every fence, where start-up
time is failover time.
"""

from __future__ import annotations

from pathlib import Path


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of ``pid``, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may hold spaces and ')': the fields we want follow its last ')'.
    fields = text[text.rfind(")") + 2 :].split()
    return fields[0], int(fields[19])  # field 3 = state, field 22 = starttime


def process_start_time(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat``; None for a process gone or a zombie."""
    stat = proc_stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return None
    return stat[1]
