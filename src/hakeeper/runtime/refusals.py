"""Records refused where they are read (rule 5 of shared/DESIGN.md section 4): one log line.

A torn or foreign record is left out by whoever reads it and said once, in one shape:
``event=record_refused key= error= fix=``. `Refusals` remembers what a reader that reads the
same key space over and over (the controller on every change, the executor every 2 s, the
event log's followers) has said already, so one bad write is one line, and a new bad write
of the same key is a new one.
"""

from __future__ import annotations

import logging

from hakeeper.coord.base import KV

log = logging.getLogger(__name__)


def log_refused(key: str, error: str, fix: str) -> None:
    log.warning("event=record_refused key=%s error=%r fix=%r", key, error, fix)


class Refusals:
    """What one reader has said already: each write once while it stays. At most ``limit``
    are remembered; past it the memory starts again, so a flood of bad records is said again,
    not missed."""

    def __init__(self, limit: int = 256) -> None:
        self._limit = limit
        self._seen: set[tuple[str, int]] = set()

    def refuse(self, kv: KV, error: str, fix: str) -> None:
        """Say that ``kv`` is refused, the first time this write of it is read."""
        seen = (kv.key, kv.mod_revision)
        if seen in self._seen:
            return
        if len(self._seen) >= self._limit:
            self._seen.clear()
        self._seen.add(seen)
        log_refused(kv.key, error, fix)
