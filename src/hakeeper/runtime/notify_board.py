"""Clone notification rounds in the key space: the node acting on a clone with
``notify = true`` posts a round naming every node to tell; each of them acknowledges once its
agent ran ``notify``; the poster ends the round (`hakeeper.runtime.notifier`).

``notify/rounds/<resource>/<id>`` is written by the acting node only,
``notify/acks/<resource>/<id>/<node>`` by each named node for itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

from hakeeper.coord.base import Coordinator
from hakeeper.model.notifications import NotifyRound
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.record_codec import (
    DECODE_ERRORS,
    decode_notify_round,
    encode_notify_round,
)


class NotifyBoard:
    """Handed out by `hakeeper.runtime.store.ClusterStore.notify_board`."""

    def __init__(self, coord: Coordinator, keys: KeySpace) -> None:
        self._coord = coord
        self._keys = keys

    async def post(self, round_: NotifyRound) -> None:
        key = self._keys.notify_round(round_.resource, round_.id)
        await self._coord.put(key, encode_notify_round(round_))

    async def acks(self, resource: str, round_id: str) -> frozenset[str]:
        prefix = self._keys.notify_acks(resource, round_id)
        return frozenset(kv.key[len(prefix) :] for kv in await self._coord.range(prefix))

    async def ack(self, resource: str, round_id: str, node: str, rc: int) -> None:
        key = self._keys.notify_acks(resource, round_id) + node
        await self._coord.put(key, str(rc).encode())

    async def end(self, resource: str, round_id: str) -> None:
        await self._coord.delete(self._keys.notify_acks(resource, round_id), prefix=True)
        await self._coord.delete(self._keys.notify_round(resource, round_id))

    async def rounds(self) -> AsyncGenerator[NotifyRound]:
        """Every round posted from now on (a torn or foreign one is skipped)."""
        prefix = self._keys.notify_rounds
        async with contextlib.aclosing(self._coord.watch(prefix)) as events:
            async for event in events:
                if event.type != "put":
                    continue
                resource, _, round_id = event.kv.key[len(prefix) :].partition("/")
                try:
                    yield decode_notify_round(event.kv.value, resource, round_id)
                except DECODE_ERRORS:
                    continue
