"""Controller election: one leased key, created only if absent; its revision is the term.

The controller key is written under the winner's *member* lease, so it vanishes exactly when
that node stops being a member (crash, partition, shutdown). Its ``create_revision`` is the
controller's term: every write the controller makes is a txn guarded by
``Cmp(controller, "create_revision", "==", term)``, so a deposed controller's writes fail even
if it does not know yet that it was deposed (shared/DESIGN.md section 4, rule 3).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from hakeeper.coord.base import Cmp, Coordinator, Delete, Get, Lease, Put, TxnResult
from hakeeper.errors import CoordError
from hakeeper.runtime.keys import KeySpace


@dataclass(frozen=True, slots=True)
class Controller:
    node: str
    term: int


class ControllerElection:
    def __init__(self, coord: Coordinator, keys: KeySpace, node: str) -> None:
        self._coord = coord
        self._keys = keys
        self._node = node

    async def campaign(self, lease: Lease) -> Controller:
        """Become controller if there is none; return whoever is controller afterwards."""
        key = self._keys.controller
        result = await self._coord.txn(
            [Cmp(key, "create_revision", "==", 0)],
            [Put(key, self._node.encode(), lease.id), Get(key)],
            [Get(key)],
        )
        current = _controller(result)
        # Both branches read the key inside the same atomic txn that found it or wrote it.
        assert current is not None
        return current

    async def resign(self, term: int) -> bool:
        """End ``term`` by deleting the controller key while that term still holds it; True
        if this deleted it. The next campaign, this node's too, starts a new term, so
        whatever the old term's controller still does is refused by `term_guard`."""
        key = self._keys.controller
        result = await self._coord.txn([term_guard(self._keys, term)], [Delete(key)], [])
        return result.succeeded

    async def current(self) -> Controller | None:
        kv = await self._coord.get(self._keys.controller)
        return None if kv is None else Controller(kv.value.decode(), kv.create_revision)

    async def vacated(self, timeout: float) -> None:
        """Until the controller key is deleted (its holder is gone), or ``timeout`` passed,
        or the engine failed: the caller campaigns again in every case."""
        with contextlib.suppress(TimeoutError, CoordError):
            async with asyncio.timeout(timeout):
                watch = self._coord.watch(self._keys.controller)
                async with contextlib.aclosing(watch) as changes:
                    async for change in changes:
                        if change.type == "delete":
                            return


def term_guard(keys: KeySpace, term: int) -> Cmp:
    """The compare that lets a write land only while ``term`` is still the controller's."""
    return Cmp(keys.controller, "create_revision", "==", term)


def _controller(result: TxnResult) -> Controller | None:
    read = result.responses[-1]
    if not isinstance(read, tuple) or not read:
        return None
    kv = read[0]
    return Controller(kv.value.decode(), kv.create_revision)
