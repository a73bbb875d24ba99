"""Commands only a peer sends (on the peer port, after the secret's handshake).

The controller's: ``hk_position``, ``hk_fence <epoch>``, ``hk_promote <epoch>``,
``hk_demote``, ``hk_dump`` and ``hk_adopt <log_epoch> <seq> <bytes>`` (the agent's catch-up
before a promotion). The primary's stream: ``hk_hello <epoch> <peer host:port>`` (a
configured peer's address only, since a replica forwards to it), ``hk_snap <epoch> <seq>
<bytes>`` and ``hk_batch <epoch> <first> <last> <bytes>``. A backup's and a restore's
(`snapshot`): ``hk_snapshot`` (on the primary; its reply waits until the snapshot's seq is
committed), ``hk_snapchunk <token> <bytes>``, ``hk_seed_begin <source epoch>``, ``hk_seed
<token> <bytes>`` (a block) and ``hk_seed_end <token> <keys>`` (answered at once with the
new position, which the replicas then copy whole). `PeerCommands` is a mixin of `Node`,
which holds the state they read and change.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

from hakeeper.sessions import entries
from hakeeper.sessions.boundary import Connection, Slot
from hakeeper.sessions.forwarding import Forwarder
from hakeeper.sessions.node_config import NodeConfig
from hakeeper.sessions.position import Position, Role
from hakeeper.sessions.snapshot import (
    IDLE_TIMEOUT,
    MAX_CHUNK,
    FrozenView,
    SeedLoad,
    whole_store,
)
from hakeeper.sessions.store import Store
from hakeeper.sessions.wire import parse_i64, parse_u64

log = logging.getLogger(__name__)


class PeerCommands:
    """The control and stream commands; `Node` provides the state and role changes."""

    config: NodeConfig
    store: Store
    role: Role
    seen_epoch: int
    log_epoch: int
    seq: int
    primary_address: str | None
    forwarder: Forwarder
    now: float
    _peer_names: frozenset[bytes]
    # At most one snapshot being read and one seed being loaded per node (memory bound).
    open_snapshot: FrozenView | None
    open_seed: SeedLoad | None

    if TYPE_CHECKING:
        # Node's, declared for the type checker.
        def position(self) -> Position: ...
        def observe_epoch(self, epoch: int) -> None: ...
        def promote(self, epoch: int) -> bytes: ...
        def step_down(self, reason: str) -> None: ...
        def forward(
            self, payload: bytes, multi: bool, noreply: bool, slot: Slot, conn: Connection
        ) -> None: ...
        def restart_log(self, reason: str) -> None: ...

    def control(self, tokens: list[bytes]) -> bytes:
        cmd = tokens[0]
        epoch = parse_i64(tokens[1]) if len(tokens) > 1 else None
        if cmd == b"hk_position" and len(tokens) == 1:
            return self.position().line()
        if cmd == b"hk_fence" and len(tokens) == 2 and epoch is not None:
            self.observe_epoch(epoch)
            return self.position().line()
        if cmd == b"hk_promote" and len(tokens) == 2 and epoch is not None:
            return self.promote(epoch)
        if cmd == b"hk_hello" and len(tokens) == 3 and epoch is not None:
            if tokens[2] not in self._peer_names:
                # Forwarding goes where a hello points: only to a configured peer.
                log.warning("event=sessions.hello_refused address=%r", tokens[2][:300])
                return b"CLIENT_ERROR hk_hello from an address not in --peers\r\n"
            return self._hello(epoch, tokens[2].decode())
        if cmd == b"hk_demote" and len(tokens) == 1:
            self.step_down("demoted")
            return b"OK\r\n"
        if cmd == b"hk_dump" and len(tokens) == 1:
            payload = whole_store(self.store)
            header = b"SNAP %d %d %d\r\n" % (self.log_epoch, self.seq, len(payload))
            return header + payload + b"\r\n"
        if cmd == b"hk_snapshot" and len(tokens) == 1:
            return self._snapshot_open()
        if cmd == b"hk_snapchunk" and len(tokens) == 3:
            return self._snapshot_chunk(parse_u64(tokens[1]), parse_u64(tokens[2]))
        if cmd == b"hk_seed_begin" and len(tokens) == 2 and epoch is not None and epoch >= 0:
            return self._seed_begin(epoch)
        if cmd == b"hk_seed_end" and len(tokens) == 3:
            return self._seed_end(parse_u64(tokens[1]), parse_u64(tokens[2]))
        return b"ERROR\r\n"

    def control_block(self, tokens: list[bytes], payload: bytes) -> bytes:
        cmd = tokens[0]
        if self.role is Role.STANDALONE:
            return b"SERVER_ERROR standalone node: it takes no replication stream\r\n"
        numbers = [parse_u64(token) for token in tokens[1:]]
        if any(number is None for number in numbers):
            return b"CLIENT_ERROR bad command line format\r\n"
        values = [number or 0 for number in numbers]
        if cmd == b"hk_adopt" and len(values) == 3:
            return self._adopt(values[0], values[1], payload)
        if cmd == b"hk_batch" and len(values) == 4:
            return self.stream_batch(values[0], values[1], values[2], payload)
        if cmd == b"hk_seed" and len(values) == 2:
            return self._seed_piece(values[0], payload)
        if cmd == b"hk_snap" and len(values) == 3:
            epoch, seq = values[0], values[1]
            return self._from_primary(epoch, lambda: self._install_snapshot(epoch, seq, payload))
        return b"ERROR\r\n"

    def stream_batch(self, epoch: int, first: int, last: int, payload: bytes) -> bytes:
        """``hk_batch``: apply entries ``first .. last`` of the primary of ``epoch``; the reply."""
        return self._from_primary(epoch, lambda: self._apply_batch(epoch, first, last, payload))

    def _from_primary(self, epoch: int, apply: Callable[[], bytes]) -> bytes:
        """A stream message from the primary of ``epoch``: refused by a standalone node, from
        an older primary or by a primary; a corrupt payload asks for a resync."""
        if self.role is Role.STANDALONE:
            return b"SERVER_ERROR standalone node: it takes no replication stream\r\n"
        if epoch < self.seen_epoch:
            return b"STALE %d\r\n" % self.seen_epoch
        self.observe_epoch(epoch)
        if self.role is Role.PRIMARY:
            return b"STALE %d\r\n" % self.seen_epoch
        try:
            return apply()
        except entries.CorruptEntry as exc:
            log.error("event=sessions.corrupt_stream error=%s", exc)
            return b"RESYNC %d\r\n" % self.seq

    def _hello(self, epoch: int, address: str) -> bytes:
        if epoch < self.seen_epoch or self.role is Role.STANDALONE:
            return b"STALE %d\r\n" % self.seen_epoch
        self.observe_epoch(epoch)
        if self.role is Role.PRIMARY:
            return b"STALE %d\r\n" % self.seen_epoch
        if self.primary_address != address:
            self.forwarder.drop("new primary")
            self.primary_address = address
        for orphan in self.forwarder.take_orphans():
            self.forward(*orphan)
        return self.position().line()

    def _adopt(self, log_epoch: int, seq: int, payload: bytes) -> bytes:
        """Take a more up-to-date node's copy before promotion (the agent's catch-up)."""
        if self.role is Role.PRIMARY:
            return b"SERVER_ERROR a primary adopts nothing; demote it first\r\n"
        if (log_epoch, seq) < (self.log_epoch, self.seq):
            return b"SERVER_ERROR snapshot (%d, %d) is older than this node's (%d, %d)\r\n" % (
                log_epoch,
                seq,
                self.log_epoch,
                self.seq,
            )
        return self._install_snapshot(log_epoch, seq, payload)

    def _install_snapshot(self, epoch: int, seq: int, payload: bytes) -> bytes:
        fresh = Store(
            memory_limit=self.config.memory_limit,
            item_size_max=self.config.item_size_max,
            clock=self.store.clock,
        )
        count = entries.apply_all(fresh, payload)
        self.store.replace_contents(fresh)
        self.log_epoch = epoch
        self.seq = seq
        log.info("event=sessions.snapshot_installed epoch=%d seq=%d items=%d", epoch, seq, count)
        return b"ACK %d\r\n" % seq

    def _apply_batch(self, epoch: int, first: int, last: int, payload: bytes) -> bytes:
        if epoch != self.log_epoch or first != self.seq + 1:
            return b"RESYNC %d\r\n" % self.seq
        entries.apply_all(self.store, payload, last - first + 1)
        self.seq = last
        return b"ACK %d\r\n" % last

    # --- a backup's snapshot and a restore's seed (`snapshot`) --------------------------------

    def _snapshot_open(self) -> bytes:
        """Freeze the store at (log_epoch, seq); the reply is held until that seq commits."""
        if self.role is not Role.PRIMARY:
            return b"SERVER_ERROR not the primary: take the snapshot on the primary\r\n"
        view = self.open_snapshot
        if view is not None and not view.done:
            return b"SERVER_ERROR busy: a snapshot is being read already; retry in %d s\r\n" % int(
                IDLE_TIMEOUT - (self.now - view.last_used) + 1
            )
        view = FrozenView(self.store, self.log_epoch, self.seq, _token(), self.now)
        self.open_snapshot = view
        log.info(
            "event=sessions.snapshot_opened epoch=%d seq=%d keys=%d",
            view.epoch,
            view.seq,
            view.keys,
        )
        return b"SNAPSHOT %d %d %d %d\r\n" % (view.token, view.epoch, view.seq, view.keys)

    def _snapshot_chunk(self, token: int | None, limit: int | None) -> bytes:
        view = self.open_snapshot
        if view is None or token is None or token != view.token:
            return b"CLIENT_ERROR no open snapshot with that token (expired?): start again\r\n"
        if limit is None or not 0 < limit <= MAX_CHUNK:
            return b"CLIENT_ERROR chunk size must be 1 to %d bytes\r\n" % MAX_CHUNK
        payload, more = view.next_chunk(limit, self.now)
        if not more:
            self.open_snapshot = None
            log.info("event=sessions.snapshot_read epoch=%d seq=%d", view.epoch, view.seq)
        return b"CHUNK %d %d\r\n%s\r\n" % (len(payload), more, payload)

    def _seed_begin(self, source_epoch: int) -> bytes:
        if self.role is not Role.PRIMARY:
            return b"SERVER_ERROR not the primary: seed the store through its primary\r\n"
        load = self.open_seed
        if load is not None:
            return b"SERVER_ERROR a seed is being loaded already; retry in %d s\r\n" % int(
                IDLE_TIMEOUT - (self.now - load.last_used) + 1
            )
        fresh = Store(
            memory_limit=self.config.memory_limit,
            item_size_max=self.config.item_size_max,
            clock=self.store.clock,
        )
        self.open_seed = SeedLoad(fresh, _token(), source_epoch, self.now)
        return b"SEED %d\r\n" % self.open_seed.token

    def _seed_piece(self, token: int, payload: bytes) -> bytes:
        load = self.open_seed
        if load is None or token != load.token:
            return b"CLIENT_ERROR no seed with that token (expired?): start again\r\n"
        try:
            puts = load.feed(payload, self.now)
        except entries.CorruptEntry as exc:
            self.open_seed = None
            return b"CLIENT_ERROR seed dropped, the store is unchanged: %s\r\n" % _line(exc)
        return b"OK %d\r\n" % puts

    def _seed_end(self, token: int | None, keys: int | None) -> bytes:
        """Replace the store with the seed, as one new log position every replica copies
        whole. The reply names that position at once: a copy to the replicas can take
        longer than a held reply may wait (``--write-timeout``), so the caller watches the
        nodes' positions instead (`snapshot_transfer.reseed`)."""
        load = self.open_seed
        if load is None or token is None or token != load.token or keys is None:
            return b"CLIENT_ERROR no seed with that token (expired?): start again\r\n"
        self.open_seed = None
        if self.role is not Role.PRIMARY:
            return b"SERVER_ERROR no longer the primary; the store is unchanged\r\n"
        try:
            fresh = load.finish(keys)
        except entries.CorruptEntry as exc:
            return b"CLIENT_ERROR seed dropped, the store is unchanged: %s\r\n" % _line(exc)
        self.store.replace_contents(fresh)
        self.restart_log(f"reseeded from a snapshot of epoch {load.source_epoch}")
        log.info(
            "event=sessions.reseeded epoch=%d seq=%d keys=%d source_epoch=%d",
            self.log_epoch,
            self.seq,
            keys,
            load.source_epoch,
        )
        return b"SEEDED %d %d %d\r\n" % (self.log_epoch, self.seq, keys)

    def expire_transfers(self, now: float) -> None:
        """Drop a snapshot or seed left unread or unfed for `IDLE_TIMEOUT` (the ticker's)."""
        view = self.open_snapshot
        if view is not None and now - view.last_used > IDLE_TIMEOUT:
            log.warning("event=sessions.snapshot_expired epoch=%d seq=%d", view.epoch, view.seq)
            self.open_snapshot = None
        load = self.open_seed
        if load is not None and now - load.last_used > IDLE_TIMEOUT:
            log.warning("event=sessions.seed_expired source_epoch=%d", load.source_epoch)
            self.open_seed = None


def _token() -> int:
    """An unguessable handle for an open snapshot or seed (a u64 on the wire)."""
    return secrets.randbits(62)


def _line(exc: Exception) -> bytes:
    """An error's message as one reply line."""
    return str(exc).replace("\r", " ").replace("\n", " ").encode()[:400]
