"""Fakes for unit tests. Real engines are tested by tests/coord/test_contract.py.

`LocalCoordinator` applies commands straight to the real `KVStateMachine` (no Raft), so keys,
leases, txns and watches behave as in the embedded backend; ``fail_with`` makes every call
raise, to play an engine without quorum; ``expire_leases(now)`` stands in for the leader's
ticker so lease expiry follows a virtual clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from hakeeper.coord.base import KV, Cmp, Delete, Get, Lease, Op, Put, TxnResult, WatchEvent
from hakeeper.coord.raft_state import KVStateMachine, cmp_wire, op_wire
from hakeeper.errors import CoordError, LeaseExpired, TTLTooShort


class LocalCoordinator:
    backend = "local"
    min_ttl = 0.5

    def __init__(self) -> None:
        self.state = KVStateMachine()
        self.fail_with: CoordError | None = None
        self.calls = 0
        self._ids = itertools.count()

    def _apply(self, command: str, *args: Any) -> Any:
        self.calls += 1
        if self.fail_with is not None:
            raise self.fail_with
        return getattr(self.state, command)(*args, _doApply=True)

    def expire_leases(self, now: float) -> None:
        for lease_id, seq in self.state.due_leases(now):
            self.state.cmd_expire(lease_id, seq, _doApply=True)

    async def grant(self, ttl: float) -> Lease:
        if ttl < self.min_ttl:
            raise TTLTooShort(f"ttl {ttl} below {self.min_ttl}")
        lease_id, granted = self._apply("cmd_grant", f"g{next(self._ids)}", ttl)
        return Lease(lease_id, granted)

    async def keepalive(self, lease: Lease) -> bool:
        return bool(self._apply("cmd_keepalive", lease.id) > 0)

    async def revoke(self, lease: Lease) -> None:
        self._apply("cmd_revoke", lease.id)

    async def lease_renewed_ago(self, lease_id: int, member: str | None = None) -> float | None:
        return self.state.renewed_ago(lease_id, time.monotonic())

    async def txn(
        self, compare: Sequence[Cmp], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        outcome = self._apply(
            "cmd_txn",
            f"t{next(self._ids)}",
            [cmp_wire(c) for c in compare],
            [op_wire(o) for o in success],
            [op_wire(o) for o in failure],
        )
        if outcome[0] == "lease_not_found":
            raise LeaseExpired(f"lease {outcome[1]} not found")
        return TxnResult(*outcome)

    async def get(self, key: str) -> KV | None:
        found = (await self.txn([], [Get(key)])).responses[0]
        assert isinstance(found, tuple)
        return found[0] if found else None

    async def range(self, prefix: str) -> list[KV]:
        found = (await self.txn([], [Get(prefix, prefix=True)])).responses[0]
        assert isinstance(found, tuple)
        return list(found)

    async def put(self, key: str, value: bytes, lease: Lease | None = None) -> int:
        return (await self.txn([], [Put(key, value, lease.id if lease else 0)])).revision

    async def delete(self, key: str, *, prefix: bool = False) -> int:
        deleted = (await self.txn([], [Delete(key, prefix)])).responses[0]
        assert isinstance(deleted, int)
        return deleted

    async def revision(self) -> int:
        return self.state.revision

    async def has_quorum(self) -> bool:
        return self.fail_with is None

    async def watch(
        self, prefix: str, start_revision: int | None = None
    ) -> AsyncGenerator[WatchEvent]:
        queue: asyncio.Queue[list[WatchEvent]] = asyncio.Queue()
        backlog = self.state.subscribe(queue.put_nowait, start_revision)
        try:
            for event in backlog:
                if event.kv.key.startswith(prefix):
                    yield event
            while True:
                for event in await queue.get():
                    if event.kv.key.startswith(prefix):
                        yield event
        finally:
            self.state.unsubscribe(queue.put_nowait)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.state.subscribers.clear()


class VirtualClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
