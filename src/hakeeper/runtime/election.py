"""Controller election: one leased key, created only if absent; its revision is the term.

The controller key is written under the winner's *member* lease, so it vanishes exactly when
that node stops being a member (crash, partition, shutdown). Its ``create_revision`` is the
controller's term: every write the controller makes is a txn guarded by
``Cmp(controller, "create_revision", "==", term)``, so a deposed controller's writes fail even
if it does not know yet that it was deposed (shared/DESIGN.md section 4, rule 3).

A controller key the cluster did not write (no lease, or a value that is no node name) would
hold every election off for good, since only a lease's end deletes the key: the campaign
refuses it (rule 5), deletes exactly that value and campaigns again.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from hakeeper.coord.base import KV, Cmp, Coordinator, Delete, Get, Lease, Put
from hakeeper.errors import CoordError
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.refusals import log_refused


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
        kv = await self._campaign(lease)
        why = _foreign(kv)
        if why:
            key = self._keys.controller
            log_refused(
                key, why, "deleted; only hakeeper writes this key, under its holder's member lease"
            )
            # Only that value: a controller elected meanwhile keeps its key.
            guard = Cmp(key, "mod_revision", "==", kv.mod_revision)
            await self._coord.txn([guard], [Delete(key)], [])
            kv = await self._campaign(lease)
        return _decoded(kv)

    async def _campaign(self, lease: Lease) -> KV:
        """The controller key after one try to create it under ``lease``: both branches of
        the txn read it, inside the same atomic step that found it or wrote it."""
        key = self._keys.controller
        result = await self._coord.txn(
            [Cmp(key, "create_revision", "==", 0)],
            [Put(key, self._node.encode(), lease.id), Get(key)],
            [Get(key)],
        )
        read = result.responses[-1]
        assert isinstance(read, tuple)
        assert read
        return read[0]

    async def resign(self, term: int) -> bool:
        """End ``term`` by deleting the controller key while that term still holds it; True
        if this deleted it. The next campaign, this node's too, starts a new term, so
        whatever the old term's controller still does is refused by `term_guard`."""
        key = self._keys.controller
        result = await self._coord.txn([term_guard(self._keys, term)], [Delete(key)], [])
        return result.succeeded

    async def current(self) -> Controller | None:
        kv = await self._coord.get(self._keys.controller)
        return None if kv is None else _decoded(kv)

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


def _foreign(kv: KV) -> str:
    """Why the cluster cannot have written this controller key ('' when it can have)."""
    if kv.lease == 0:
        return "the controller key has no lease, so it would never be deleted"
    try:
        kv.value.decode()
    except UnicodeDecodeError:
        return f"the controller key holds {kv.value[:40]!r}, which is no node name"
    return ""


def _decoded(kv: KV) -> Controller:
    # Shown, never trusted: a node name that is no UTF-8 is no node of this cluster.
    return Controller(kv.value.decode(errors="replace"), kv.create_revision)
