"""The cluster's append-only event log, kept in the coordination key space.

Each event is one key under ``events/``: ``<ts in µs, 16 digits>-<writer>-<seq>``, so a range
read returns the log in time order and writers never collide. The value is the event's JSON
line (`hakeeper.model.events`). Trimming drops the oldest keys past an age or a count.

A torn event, or one of a kind or shape this release does not know (a newer release's, in a
rolling upgrade), is refused where it is read (rule 5): left out, and logged once per
`EventLog`. Raised, it ended a new controller's term (its first look reads the history) on
every node in turn.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncGenerator, Callable, Sequence

from hakeeper.coord.base import KV, MAX_TXN_OPS, Coordinator, Delete, Get
from hakeeper.errors import ConfigError
from hakeeper.model.events import Event, from_json, to_json
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.record_codec import DECODE_ERRORS
from hakeeper.runtime.refusals import Refusals

WallClock = Callable[[], float]

REFUSED_FIX = (
    "left out of every read until trimmed; an event of a newer release is read once this "
    "node runs that release"
)


class EventLog:
    def __init__(self, coord: Coordinator, keys: KeySpace, writer: str) -> None:
        self._coord = coord
        self._keys = keys
        self._writer = writer
        self._seq = itertools.count()
        self._refused = Refusals()

    def key_for(self, event: Event) -> str:
        return f"{self._keys.events}{int(event.ts * 1e6):016d}-{self._writer}-{next(self._seq)}"

    async def append(self, event: Event) -> int:
        """Write one event; returns its revision."""
        return await self._coord.put(self.key_for(event), to_json(event).encode())

    async def read(self) -> list[Event]:
        """Every event still kept, oldest first."""
        return self._events(await self._coord.range(self._keys.events))

    async def read_at(self) -> tuple[list[Event], int]:
        """Every event still kept, oldest first, and the revision of that read: one txn, so
        following from revision + 1 neither misses nor repeats an event."""
        result = await self._coord.txn([], [Get(self._keys.events, prefix=True)])
        found = result.responses[0]
        kvs = found if isinstance(found, tuple) else ()
        return self._events(kvs), result.revision

    async def follow(
        self, start_revision: int | None = None
    ) -> AsyncGenerator[tuple[int, Event | None]]:
        """Every change of the log from ``start_revision`` (if given) with its revision: the
        event appended, or None where trimming deleted one or the event was refused. The
        revisions let a broken stream resume exactly where it stopped; `Compacted` when
        ``start_revision`` is gone."""
        watch = self._coord.watch(self._keys.events, start_revision)
        async with contextlib.aclosing(watch) as changes:
            async for change in changes:
                yield change.revision, self._event(change.kv) if change.type == "put" else None

    async def revision(self) -> int:
        """The engine's current revision (to follow from, after a gap)."""
        return await self._coord.revision()

    async def trim(self, *, now: float, max_age: float, max_count: int) -> int:
        """Delete events older than ``max_age`` seconds and beyond the newest ``max_count``,
        oldest first, in txns the engine accepts; returns how many went."""
        kvs = await self._coord.range(self._keys.events)
        cutoff = f"{self._keys.events}{int((now - max_age) * 1e6):016d}"
        doomed = [kv.key for kv in kvs[: max(0, len(kvs) - max_count)]]
        doomed += [kv.key for kv in kvs[len(doomed) :] if kv.key < cutoff]
        for first in range(0, len(doomed), MAX_TXN_OPS):
            await self._coord.txn([], [Delete(key) for key in doomed[first : first + MAX_TXN_OPS]])
        return len(doomed)

    async def read_since(self, revision: int) -> tuple[list[tuple[int, Event]], int]:
        """The events written after ``revision``, each with its own revision, and the
        revision of this read (one txn: following from it neither misses nor repeats)."""
        result = await self._coord.txn([], [Get(self._keys.events, prefix=True)])
        found = result.responses[0]
        kvs = found if isinstance(found, tuple) else ()
        newer = [(kv.mod_revision, self._event(kv)) for kv in kvs if kv.mod_revision > revision]
        return [(at, event) for at, event in newer if event is not None], result.revision

    def _event(self, kv: KV) -> Event | None:
        """The event ``kv`` holds; None when it is refused (logged the first time)."""
        try:
            return from_json(kv.value.decode(), kv.key)
        except (ConfigError, *DECODE_ERRORS) as exc:
            self._refused.refuse(kv, str(exc), REFUSED_FIX)
            return None

    def _events(self, kvs: Sequence[KV]) -> list[Event]:
        return [event for kv in kvs if (event := self._event(kv)) is not None]
