"""What every connection of one frontend shares, and the coarse deadline sweep.

Timeouts are not timers: each connection keeps one ``deadline`` (a float on the loop's clock)
that it moves at phase changes using the coarse ``now`` below, and one task per frontend
wakes every ``timeouts.sweep`` seconds, refreshes ``now`` and expires the connections whose
deadline passed. A timeout therefore fires up to one sweep period late, and the hot path pays
one attribute store per phase change instead of a timer per request.

``maxconn`` (HAProxy's frontend ``maxconn``): at most that many client connections are
served at once. A connection accepted above it gets no slot: it is held, not read and not
sent upstream, in a FIFO of at most ``maxqueue`` (then it is refused: closed at once, with a
503 in http mode), until a served connection ends and hands over its slot, or until
``timeouts.queue`` passes (then a 503 in http mode, and closed). HAProxy leaves such
connections in the kernel's accept backlog instead; uvloop cannot pause accepting, so they
are accepted and held here, which bounds them in number and in time all the same. The cost
on the accept path is one comparison and one counter per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Protocol

from hakeeper.balancer.config import FrontendSpec, Limits, Timeouts
from hakeeper.balancer.policies import key_of
from hakeeper.balancer.servers import Backend, Server
from hakeeper.balancer.write_batch import WriteBatch

log = logging.getLogger("hakeeper.balancer")

# Policies that look at the client's address; the others never pay for hashing it.
KEYED_POLICIES = frozenset({"source", "consistent"})


class Expirable(Protocol):
    deadline: float

    def expire(self) -> None: ...


class Holdable(Expirable, Protocol):
    def admit(self) -> None:
        """Take the maxconn slot just handed over: start reading and serving."""


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
        self.maxconn = spec.maxconn
        self.served = 0  # connections holding a maxconn slot
        self.waiting: deque[Holdable] = deque()  # held for a slot, oldest first
        self.queued_total = 0
        self.refused_total = 0
        self._reported = (0, 0)  # (queued, refused) totals last logged by the sweep
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
        # The stickiness cookie is read for every http request and response: an attribute
        # load, not this property's call. A reload sets the backend again, so it is never
        # stale (a clone's updates change servers only).
        self.cookie = backend.spec.cookie
        self.refresh_keyed()

    def refresh_keyed(self) -> None:
        """Whether the policy looks at the client's address (else nobody asks for it)."""
        self.keyed = self._backend.spec.policy in KEYED_POLICIES

    def client_key(self, peer_host: str) -> int:
        return key_of(peer_host) if self.keyed else 0

    def retries_spent(self, server: Server, tried: list[Server], why: str) -> bool:
        """Whether a connection whose connect to ``server`` (the last of ``tried``) failed
        for ``why`` may try no other server; logged when so."""
        if len(tried) <= self._backend.spec.retries:
            return False
        log.warning(
            "event=connect_failed frontend=%s server=%s reason=%s retries=exhausted",
            self.spec.name,
            server.name,
            why.replace(" ", "_"),
        )
        return True

    # -- maxconn ---------------------------------------------------------------------------

    def hold(self, conn: Holdable) -> bool:
        """Queue ``conn`` for a slot (the caller found none free); False when the queue is
        full and the caller must refuse it."""
        if len(self.waiting) >= self.spec.maxqueue:
            self.refused_total += 1
            return False
        self.queued_total += 1
        conn.deadline = self.now + self._timeouts.queue
        self.waiting.append(conn)
        return True

    def drop_waiting(self, conn: Holdable) -> None:
        """``conn`` left the queue without a slot (expired or closed by its client)."""
        with contextlib.suppress(ValueError):
            self.waiting.remove(conn)

    def release(self) -> None:
        """A served connection ended: its slot goes to the oldest waiting one."""
        self.served -= 1
        if self.waiting:
            self.admit_waiting()

    def leave(self, conn: Holdable, slot: bool, queued: bool) -> None:
        """``conn`` closed: off the deadline sweep, and its maxconn ``slot`` handed to the
        oldest waiting connection, or its place in the queue (``queued``) given up."""
        self.conns.discard(conn)
        if slot:
            self.release()
        elif queued:
            self.drop_waiting(conn)

    def admit_waiting(self) -> None:
        waiting = self.waiting
        while waiting and self.served < self.maxconn:
            self.served += 1
            waiting.popleft().admit()

    def set_maxconn(self, maxconn: int) -> None:
        self.maxconn = maxconn
        self.admit_waiting()

    # -- deadlines -------------------------------------------------------------------------

    def sweep(self) -> None:
        now = self.now = self.loop.time()
        self._deadlines()
        totals = (self.queued_total, self.refused_total)
        if totals != self._reported:
            # Once per sweep at most: a flood of connections cannot flood the log.
            log.warning(
                "event=frontend_full frontend=%s maxconn=%d queued=%d refused=%d waiting=%d",
                self.spec.name,
                self.maxconn,
                totals[0] - self._reported[0],
                totals[1] - self._reported[1],
                len(self.waiting),
            )
            self._reported = totals
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
