"""What every connection of one frontend shares, and the coarse deadline sweep.

Timeouts are not timers: each connection keeps one ``deadline`` (a float on the loop's clock)
that it moves at phase changes using the coarse ``now`` below, and one task per frontend
wakes every ``timeouts.sweep`` seconds, refreshes ``now`` and expires the connections whose
deadline passed. A timeout therefore fires up to one sweep period late, and the hot path pays
one attribute store per phase change instead of a timer per request.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from hakeeper.balancer.config import FrontendSpec, Limits, Timeouts
from hakeeper.balancer.policies import key_of
from hakeeper.balancer.servers import Backend
from hakeeper.balancer.write_batch import WriteBatch

log = logging.getLogger("hakeeper.balancer")

# Policies that look at the client's address; the others never pay for hashing it.
KEYED_POLICIES = frozenset({"source", "consistent"})


class Expirable(Protocol):
    deadline: float

    def expire(self) -> None: ...


class FrontendRuntime:
    def __init__(
        self,
        spec: FrontendSpec,
        backend: Backend,
        timeouts: Timeouts,
        limits: Limits,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.spec = spec
        self.backend = backend
        self.limits = limits
        self.loop = loop
        self.now = loop.time()
        self.conns: set[Expirable] = set()
        self.accepted = 0
        self.batch = WriteBatch(loop)  # the L7 relay's writes, sent at the end of each pass
        self.timeouts = timeouts

    @property
    def timeouts(self) -> Timeouts:
        return self._timeouts

    @timeouts.setter
    def timeouts(self, timeouts: Timeouts) -> None:
        self._timeouts = timeouts
        self._deadlines()

    def _deadlines(self) -> None:
        """Each phase's deadline for a connection entering it now (one load on the hot path)."""
        now, t = self.now, self._timeouts
        self.header_deadline = now + t.client_header
        self.idle_deadline = now + t.client_idle
        self.connect_deadline = now + t.connect
        self.response_deadline = now + t.response
        self.tcp_idle_deadline = now + t.tcp_idle

    @property
    def backend(self) -> Backend:
        return self._backend

    @backend.setter
    def backend(self, backend: Backend) -> None:
        self._backend = backend
        self.refresh_keyed()

    def refresh_keyed(self) -> None:
        """Whether the policy looks at the client's address (else nobody asks for it)."""
        self.keyed = self._backend.spec.policy in KEYED_POLICIES

    def client_key(self, peer_host: str) -> int:
        return key_of(peer_host) if self.keyed else 0

    def sweep(self) -> None:
        now = self.now = self.loop.time()
        self._deadlines()
        for conn in [c for c in self.conns if c.deadline < now]:
            try:
                conn.expire()
            except Exception:  # a bug in one connection's expiry must not stop the sweep
                log.exception("event=expire_failed frontend=%s", self.spec.name)
                self.conns.discard(conn)

    async def run_sweeper(self) -> None:
        while True:
            await asyncio.sleep(self.timeouts.sweep)
            self.sweep()
