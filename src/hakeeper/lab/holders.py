"""The checker for exclusive resources: from a service's own start/stop records, did two
holders ever overlap?

A service started by the lab records ``start``/``stop`` with the system-wide monotonic clock
(`hakeeper.lab.http_app`). A holder killed without its own ``stop`` line (a crash, a fence)
ends at the first moment its node is known down: the lab's crash time or the fence device's
confirmed-off time, whichever comes first after it started. Unknown: it still runs.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hakeeper.lab.loopback import Record

#: (node, started at) -> when that node was certainly down since, or None.
DownSince = Callable[[str, float], float | None]


@dataclass(frozen=True, slots=True)
class Holding:
    node: str
    start: float
    end: float  # inf: still running
    pid: int


def holdings(records: Iterable[Record], down_since: DownSince) -> list[Holding]:
    out: list[Holding] = []
    open_at: dict[int, Record] = {}
    for rec in sorted(records, key=lambda r: r.at):
        if rec.what == "start":
            open_at[rec.pid] = rec
        elif rec.pid in open_at:
            begin = open_at.pop(rec.pid)
            out.append(Holding(begin.node, begin.at, rec.at, rec.pid))
    for begin in open_at.values():
        end = down_since(begin.node, begin.at)
        out.append(Holding(begin.node, begin.at, float("inf") if end is None else end, begin.pid))
    return sorted(out, key=lambda h: (h.start, h.end))


def overlaps(records: Iterable[Record], down_since: DownSince) -> list[tuple[Holding, Holding]]:
    """Every pair of holdings where the later one started before the earlier one ended."""
    found = []
    ordered = holdings(records, down_since)
    for i, a in enumerate(ordered):
        for b in itertools.islice(ordered, i + 1, None):
            if b.start >= a.end:
                continue
            found.append((a, b))
    return found


def describe(pairs: list[tuple[Holding, Holding]]) -> str:
    return "; ".join(
        f"{a.node} (pid {a.pid}) ran {a.start:.3f}-{a.end:.3f} while {b.node} (pid {b.pid}) "
        f"started at {b.start:.3f}"
        for a, b in pairs
    )
