"""The stored `NodeChange` (``runtime/node-change``): one membership change at a time.

Handed out by `ClusterStore.node_changes`; written only by ``hakeeper node add|remove|replace``
(`hakeeper.runtime.node_changes`). `begin` creates the record only where none exists, so two
operators cannot start two changes; each step rewrites it before it starts; `finish` deletes
it. The value is JSON; a torn or foreign value reads as a `ConfigError` that names the key.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from typing import get_args

from hakeeper.coord.base import Cmp, Coordinator, Delete, Put
from hakeeper.errors import ConfigError
from hakeeper.model.node_change import NodeChange, NodeChangeKind, NodeChangeStep
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.record_codec import DECODE_ERRORS

MAX_RECORD_BYTES = 4096  # names and addresses are short; anything longer is not ours


def encode_node_change(change: NodeChange) -> bytes:
    return json.dumps(asdict(change), sort_keys=True).encode()


def decode_node_change(raw: bytes) -> NodeChange:
    """The record, or ValueError/KeyError/TypeError for bytes that are not one."""
    if len(raw) > MAX_RECORD_BYTES:
        raise ValueError(f"{len(raw)} bytes, more than {MAX_RECORD_BYTES}")
    data = json.loads(raw)
    kind, step = data["kind"], data["step"]
    if kind not in get_args(NodeChangeKind) or step not in get_args(NodeChangeStep):
        raise ValueError(f"unknown kind {kind!r} or step {step!r}")
    change = NodeChange(
        kind=kind,
        node=str(data["node"]),
        address=str(data["address"]),
        step=step,
        started=float(data["started"]),
        old=str(data.get("old", "")),
        old_address=str(data.get("old_address", "")),
    )
    if step not in change.steps or not change.node:
        raise ValueError(f"step {step!r} is not a step of a {kind} change")
    return change


class NodeChangeLog:
    def __init__(self, coord: Coordinator, keys: KeySpace) -> None:
        self._coord = coord
        self._keys = keys

    async def current(self) -> NodeChange | None:
        kv = await self._coord.get(self._keys.node_change)
        if kv is None:
            return None
        try:
            return decode_node_change(kv.value)
        except DECODE_ERRORS as exc:
            raise ConfigError(
                f"the stored membership change ({self._keys.node_change}) does not read "
                f"({exc}): inspect it, and delete the key if no change is in flight"
            ) from None

    async def begin(self, change: NodeChange) -> bool:
        """Record ``change`` unless one is recorded already; False then (nothing written)."""
        key = self._keys.node_change
        result = await self._coord.txn(
            [Cmp(key, "create_revision", "==", 0)], [Put(key, encode_node_change(change))]
        )
        return result.succeeded

    async def advance(self, change: NodeChange, step: NodeChangeStep) -> NodeChange:
        """Record that ``step`` of ``change`` starts now."""
        after = replace(change, step=step)
        await self._coord.put(self._keys.node_change, encode_node_change(after))
        return after

    async def finish(self) -> None:
        await self._coord.delete(self._keys.node_change)

    async def forget_node(self, node: str) -> None:
        """Drop what the cluster remembers of a node that left: its statuses, fail counts,
        flags and marks (its member key went with its lease)."""
        keys = self._keys
        await self._coord.txn(
            [],
            [
                Delete(f"{keys.status}{node}/", prefix=True),
                Delete(f"{keys.failcounts}{node}/", prefix=True),
                Delete(keys.node_flag(node)),
                Delete(keys.fenced(node)),
                Delete(keys.leaving(node)),
            ],
        )
