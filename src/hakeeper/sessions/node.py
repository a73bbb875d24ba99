"""One session-store node: its role, its replication position, and what it does with requests.

Roles:

- ``standalone``: a plain memcached; replies go out at once.
- ``primary`` (epoch E): applies writes, appends their resulting state to the log, and holds
  every reply until an entry issued after the request arrived is held by a majority of nodes
  (itself included). That makes writes durable on a majority before they are acknowledged,
  and reads linearizable: a primary that lost its majority (deposed or cut off) answers
  nothing.
- ``replica``: applies the primary's stream; forwards client writes (and reads, unless
  ``stale_reads``) to the primary it last accepted.

Fencing: each node keeps the highest epoch it has seen (``seen_epoch``; a start option, raised
by ``hk_fence``, ``hk_promote`` and the primary's ``hk_hello``). Stream messages of an older
epoch are refused with ``STALE``, and a primary that learns of a newer epoch steps down. The
controller fences a majority with the new epoch, reads their positions, and promotes the
most up-to-date one (highest ``(log_epoch, seq)``) with that epoch.

The control and stream commands (`control.PeerCommands`) come on the peer port only, from
a connection that proved the cluster secret (`peer_auth`). Nodes know each other by their
peer addresses: the stream, forwarding and control all use the peer port.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Coroutine
from typing import Any

from hakeeper.config.secret_file import ClusterSecret, SecretFile
from hakeeper.errors import ConfigError
from hakeeper.sessions import entries
from hakeeper.sessions.auth import ClientAuth, read_authfile
from hakeeper.sessions.boundary import Connection, Slot
from hakeeper.sessions.control import PeerCommands
from hakeeper.sessions.forwarding import Forwarder
from hakeeper.sessions.links import StreamLink, run_link
from hakeeper.sessions.node_config import NodeConfig
from hakeeper.sessions.position import Position, Role
from hakeeper.sessions.snapshot import MAX_CHUNK, FrozenView, SeedLoad, whole_store
from hakeeper.sessions.store import Store
from hakeeper.sessions.wire import VERSION

log = logging.getLogger(__name__)

# Entries kept for lagging replicas; one further behind gets a snapshot instead.
LOG_KEEP = 200_000
LOG_KEEP_BYTES = 64 << 20
# ... and at most this share of --memory, so that the log of a node whose replicas are away
# does not double the process's memory (a laggard past it gets a snapshot).
LOG_SHARE_OF_MEMORY = 4
LOG_TRIM_EVERY = 4096
TICK = 0.1
# A replica whose acks the commit does not need is sent a read's no-op entries only once this
# many are pending (or at the next tick): fewer, larger batches cost it less per read.
LAZY_BACKLOG = 512
# Idle and slow-request timeouts are checked every this many ticks.
SWEEP_TICKS = 10
# Slack over the largest entry or snapshot a peer can legitimately send (entry headers).
BLOCK_SLACK = 1 << 20
# A catch-up snapshot built for one replica serves the others at the same position for this
# long (after a reseed every replica needs one at once; each build holds the loop ~1 s per
# 100 MB of items), then its memory is let go.
CATCH_UP_REUSE = 1.0


class Node(PeerCommands):
    def __init__(self, config: NodeConfig, store: Store | None = None) -> None:
        self.config = config
        self.store = store or Store(
            memory_limit=config.memory_limit, item_size_max=config.item_size_max
        )
        self.role = Role.REPLICA if config.replicated else Role.STANDALONE
        self.log_epoch = 0
        self.seen_epoch = config.start_epoch
        self.seq = 0
        self.written_seq = 0  # the newest entry that is a write, not a read's no-op
        self.commit_seq = 1 << 62
        self.primary_address: str | None = None
        self.started = time.time()
        # A coarse monotonic clock (set by the ticker) for timeouts of held replies and
        # links: the hot path reads this instead of the clock.
        self.now = time.monotonic()
        self.total_connections = 0
        self.rejected_connections = 0
        self.connections: set[Connection] = set()
        self.clients = 0  # connections in `connections` that are not peers
        self.pending_peers = 0  # peer-port connections still in the handshake
        self._secret_file = SecretFile(config.secret_file) if config.secret_file else None
        self.client_auth: ClientAuth | None = (
            read_authfile(config.authfile) if config.authfile else None
        )
        self._peer_names = frozenset(peer.encode() for peer in config.peers)
        self.peer_ssl = config.peer_tls.client_context() if config.peer_tls else None
        self._ticks = 0
        # Primary state: entries seq log_base .. seq, per-peer ack and sent positions.
        self._log: list[bytes] = []
        self._log_bytes = 0
        self._log_keep_bytes = min(
            LOG_KEEP_BYTES, max(config.memory_limit // LOG_SHARE_OF_MEMORY, config.batch_bytes)
        )
        self._log_base = 1
        self._acked: dict[str, int] = {}
        self.sent_max = 0
        self._links: list[StreamLink] = []
        self._flush_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._link_tasks: list[asyncio.Task[None]] = []
        # Connections with replies held for a commit or a forwarded answer; a commit pass
        # takes the whole set and each connection still holding something re-enters.
        self.waiting: set[Connection] = set()
        self._tg: asyncio.TaskGroup | None = None
        self.open_snapshot: FrozenView | None = None
        # (log_epoch, seq, monotonic time built, payload) of the last catch-up snapshot.
        self._catch_up: tuple[int, int, float, bytes] | None = None
        self.open_seed: SeedLoad | None = None
        self.forwarder = Forwarder(
            config.identity, config.forward_timeout, self.secret_source, self.peer_ssl, self._spawn
        )
        self._set_flags()

    # --- role flags read by the protocol on every command --------------------------------------

    def _set_flags(self) -> None:
        primary = self.role is Role.PRIMARY
        replica = self.role is Role.REPLICA
        self.holds_replies = primary
        self.logs_writes = primary
        self.forwards_writes = replica
        self.forwards_reads = replica and not self.config.stale_reads
        if not primary:
            self.commit_seq = 1 << 62 if self.role is Role.STANDALONE else 0

    def position(self) -> Position:
        return Position(self.log_epoch, self.seq, self.seen_epoch, self.role)

    # --- running -----------------------------------------------------------------------------

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Own the node's background tasks until cancelled (ticker, replica links)."""
        self._loop = asyncio.get_running_loop()
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            tg.create_task(self._ticker())
            if ready is not None:
                ready.set()
            await asyncio.Event().wait()

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            now = self.now = time.monotonic()
            self._ticks += 1
            if self._ticks % SWEEP_TICKS == 0:
                config = self.config
                for conn in list(self.connections):
                    conn.sweep(now, config.idle_timeout, config.request_timeout)
            for link in list(self._links):
                if link.sent > link.acked and now - link.unacked_since > self.config.write_timeout:
                    link.close(f"no ACK within {self.config.write_timeout}s")
            if self._links:
                self._flush_streams(everyone=True)
            for conn in list(self.waiting):
                since = conn.oldest_held()
                if since is not None and now - since > self.config.write_timeout:
                    self.waiting.discard(conn)
                    conn.abort("reply not committed by a majority in time")
            self.forwarder.expire(now)
            if self.open_snapshot is not None or self.open_seed is not None:
                self.expire_transfers(now)
            if self._catch_up is not None and now - self._catch_up[2] > CATCH_UP_REUSE:
                self._catch_up = None

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a task of the running node; a node not running drops it."""
        if self._tg is None:
            coro.close()
            return
        self._tg.create_task(coro)

    # --- connections -------------------------------------------------------------------------

    def connection_opened(self, conn: Connection) -> bool:
        """Count a new connection; False (refuse it) for a client beyond max_connections."""
        if not conn.peer:
            if self.clients >= self.config.max_connections:
                self.rejected_connections += 1
                return False
            self.clients += 1
        self.connections.add(conn)
        self.total_connections += 1
        return True

    def connection_closed(self, conn: Connection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            if not conn.peer:
                self.clients -= 1
        self.waiting.discard(conn)

    # --- the cluster secret ------------------------------------------------------------------

    def secret_source(self) -> SecretFile:
        if self._secret_file is None:
            raise ConfigError(
                "sessions: a replicated node needs the cluster secret: give --secret-file "
                "(a file of mode 0600 written by `hakeeper init`)"
            )
        return self._secret_file

    def secret(self) -> ClusterSecret:
        return self.secret_source().get()

    def block_limit(self, cmd: bytes) -> int:
        """The largest ``hk_*`` block accepted: a batch, or a whole snapshot."""
        config = self.config
        if cmd == b"hk_batch":
            return config.batch_bytes + config.item_size_max + BLOCK_SLACK
        if cmd == b"hk_seed":
            return MAX_CHUNK + config.item_size_max + BLOCK_SLACK
        return config.memory_limit + BLOCK_SLACK

    # --- primary: the log and commits --------------------------------------------------------

    def log_key(self, key: bytes) -> None:
        """Log the state of ``key`` (PUT of the stored tuple, or DELETE): every write's path."""
        record = self.store.peek_record(key)
        if record is None:
            self._append(entries.encode_delete(key))
        else:
            self._append(entries.encode_put(key, record[0], record[1], record[2], record[3]))

    def log_flush(self) -> None:
        self._append(entries.encode_flush(self.store.flush_at))

    def reply_barrier(self) -> int:
        """A seq whose commit proves this node was still primary after the request arrived."""
        if self.seq <= self.sent_max:
            self._append(entries.NOOP_ENTRY, write=False)
        return self.seq

    def _append(self, entry: bytes, write: bool = True) -> None:
        self._log.append(entry)
        self._log_bytes += len(entry)
        if self._log_bytes > self._log_keep_bytes:
            # No replica acknowledging must not grow memory without bound either.
            self._trim_log()
        self.seq += 1
        if write:
            self.written_seq = self.seq
        if not self.config.peers:
            self.commit_seq = self.seq
        elif not self._flush_pending and self._loop is not None:
            # One stream write per replica per loop iteration, whatever the number of writes.
            self._flush_pending = True
            self._loop.call_soon(self._flush_streams)

    def schedule_flush(self) -> None:
        """Flush the streams at the end of this loop iteration (a link's window opened)."""
        if not self._flush_pending and self._loop is not None:
            self._flush_pending = True
            self._loop.call_soon(self._flush_streams)

    def _flush_streams(self, everyone: bool = False) -> None:
        """Send replicas everything appended since their last batch.

        The commit needs acks from ``majority - 1`` replicas: those that acknowledged most
        (the fastest) get every flush. The others get every flush that holds a write, in the
        same step: by the time a write is acknowledged every replica whose window is open has
        been sent it, so the primary and the replica that acknowledged can both lose their
        memory right after the reply and the third still holds the write (the seventh 1-hour
        nemesis run lost one that way when they got writes only every 512 entries or 0.1 s).
        Only a read's no-op entries wait for ``LAZY_BACKLOG`` of them or the ticker's flush of
        ``everyone``: they carry no data. A fast replica that stops acknowledging falls
        behind a lazy one, which then gets every flush in its place.
        """
        self._flush_pending = False
        seq = self.seq
        batch_bytes = self.config.batch_bytes
        chunks: dict[int, tuple[int, bytes] | None] = {}
        links = self._links
        if len(links) > 1:
            links = sorted(links, key=_by_ack, reverse=True)
        eager = self.config.majority - 1
        written = self.written_seq
        for index, link in enumerate(links):
            if (
                not everyone
                and index >= eager
                and link.sent >= written
                and seq - link.sent < LAZY_BACKLOG
            ):
                continue
            while link.streaming and link.sent < seq and link.window_open:
                sent = link.sent
                if sent not in chunks:
                    chunks[sent] = self.entries_after(sent, batch_bytes)
                chunk = chunks[sent]
                if chunk is None:
                    link.close("replica fell behind the kept log; it gets a snapshot")
                    break
                link.send_batch(*chunk)
                if link.sent > self.sent_max:
                    self.sent_max = link.sent

    def _advance_commit(self) -> None:
        positions = sorted([self.seq, *self._acked.values()], reverse=True)
        majority = self.config.majority
        commit = positions[majority - 1] if len(positions) >= majority else 0
        if commit > self.commit_seq:
            self.commit_seq = commit
            waiting = self.waiting
            if waiting:
                self.waiting = set()
                for conn in waiting:
                    conn.release()
            self._trim_log()

    def _trim_log(self) -> None:
        """Drop what every replica holds; past the bounds, what laggards lack (snapshot)."""
        if len(self._log) < LOG_TRIM_EVERY and self._log_bytes <= self._log_keep_bytes:
            return
        floor = min(self._acked.values(), default=self.seq)
        floor = max(floor, self.seq - LOG_KEEP)
        drop = floor - self._log_base + 1
        kept_bytes = self._log_bytes - sum(len(entry) for entry in self._log[: max(drop, 0)])
        while kept_bytes > self._log_keep_bytes and drop < len(self._log):
            kept_bytes -= len(self._log[max(drop, 0)])
            drop = max(drop, 0) + 1
        if drop > 0:
            del self._log[:drop]
            self._log_base += drop
            self._log_bytes = kept_bytes

    def entries_after(self, seq: int, limit_bytes: int) -> tuple[int, bytes] | None:
        """(last seq, payload) of the entries after ``seq``, or None if trimmed away."""
        if seq + 1 < self._log_base:
            return None
        start = seq + 1 - self._log_base
        if limit_bytes > 0:
            # The common case, everything pending fits one batch: slice and join in C.
            pending = self._log[start:]
            payload = b"".join(pending)
            if len(payload) <= limit_bytes or len(pending) <= 1:
                return seq + len(pending), payload
        parts: list[bytes] = []
        size = 0
        index = start
        while index < len(self._log) and (size < limit_bytes or not parts):
            parts.append(self._log[index])
            size += len(self._log[index])
            index += 1
        return seq + len(parts), b"".join(parts)

    def catch_up_snapshot(self) -> bytes:
        """The whole store as one snapshot payload at this position, for a replica that
        cannot resume from the log; replicas asking at the same position share one build."""
        cached = self._catch_up
        if cached is not None and cached[:2] == (self.log_epoch, self.seq):
            return cached[3]
        payload = whole_store(self.store)
        self._catch_up = (self.log_epoch, self.seq, time.monotonic(), payload)
        return payload

    def note_sent(self, last: int) -> None:
        if last > self.sent_max:
            self.sent_max = last

    def note_acked(self, peer: str, seq: int) -> None:
        if self.role is Role.PRIMARY and seq > self._acked.get(peer, 0):
            self._acked[peer] = seq
            self._advance_commit()

    def attach_link(self, link: StreamLink) -> None:
        """A replica caught up to ``link.sent``: stream to it from now on."""
        if not self.is_primary_of(link.epoch):
            link.close("no longer primary of this epoch")
            return
        self._links.append(link)
        self.note_acked(link.peer, link.acked)
        if link.sent < self.seq:
            self.schedule_flush()

    def detach_link(self, link: StreamLink) -> None:
        if link in self._links:
            self._links.remove(link)
            # A lazy replica may be the one the commit needs now.
            self._flush_streams(everyone=True)

    def restart_log(self, reason: str) -> None:
        """The store was replaced whole (a reseed): one new log position, and every replica
        copies the store whole from there (its stream closes; the next one starts with a
        snapshot, since the log now begins after any position it holds)."""
        self.seq += 1
        self.written_seq = self.seq
        self._log = []
        self._log_bytes = 0
        self._log_base = self.seq + 1
        self.sent_max = self.seq
        for link in list(self._links):
            link.close(reason)

    def is_primary_of(self, epoch: int) -> bool:
        return self.role is Role.PRIMARY and self.log_epoch == epoch

    # --- role changes ------------------------------------------------------------------------

    def promote(self, epoch: int) -> bytes:
        if self.role is Role.STANDALONE:
            return b"SERVER_ERROR standalone node: start it with --peers to replicate\r\n"
        if epoch < self.seen_epoch or epoch <= self.log_epoch:
            return b"SERVER_ERROR stale epoch %d: this node has seen epoch %d\r\n" % (
                epoch,
                max(self.seen_epoch, self.log_epoch),
            )
        self.forwarder.drop("promoted")
        self.forwarder.fail_orphans(float("inf"))
        # Streams of the previous epoch must not count toward this one's majority.
        self.step_down(f"re-promoted with epoch {epoch}")
        self.seen_epoch = epoch
        self.log_epoch = epoch
        self.role = Role.PRIMARY
        self.primary_address = self.config.identity
        self._log = []
        self._log_bytes = 0
        self._log_base = self.seq + 1
        self._acked = {}
        self.sent_max = self.seq
        self._set_flags()
        self.commit_seq = self.seq if not self.config.peers else 0
        log.info("event=sessions.promoted epoch=%d seq=%d", epoch, self.seq)
        tg = self._tg
        if tg is None:
            return b"SERVER_ERROR node not running\r\n"
        self._link_tasks = [
            tg.create_task(run_link(self, peer, epoch)) for peer in self.config.peers
        ]
        return b"OK\r\n"

    def observe_epoch(self, epoch: int) -> None:
        """A newer epoch exists: remember it; a primary of an older epoch steps down."""
        if epoch <= self.seen_epoch:
            return
        self.seen_epoch = epoch
        if self.role is Role.PRIMARY and self.log_epoch < epoch:
            self.step_down(f"newer epoch {epoch}")

    def step_down(self, reason: str) -> None:
        """Stop being primary: links stop, held replies are dropped (never acknowledged)."""
        if self.role is not Role.PRIMARY:
            return
        log.warning(
            "event=sessions.deposed epoch=%d seq=%d commit=%d reason=%r",
            self.log_epoch,
            self.seq,
            self.commit_seq,
            reason,
        )
        self.role = Role.REPLICA
        self.primary_address = None
        for task in self._link_tasks:
            task.cancel()
        self._link_tasks = []
        for link in self._links:
            link.close()
        self._links.clear()
        self._set_flags()
        for conn in list(self.waiting):
            conn.abort(f"no longer primary: {reason}")
        self.waiting.clear()

    # --- replica: forwarding -----------------------------------------------------------------

    def forward(
        self, payload: bytes, multi: bool, noreply: bool, slot: Slot, conn: Connection
    ) -> None:
        self.forwarder.forward(self.primary_address, payload, multi, noreply, slot, conn)

    # --- stats -------------------------------------------------------------------------------

    def stats_lines(self) -> list[tuple[bytes, bytes]]:
        stats = self.store.stats()
        now = time.time()
        pairs: list[tuple[str, object]] = [
            ("pid", os.getpid()),
            ("uptime", int(now - self.started)),
            ("time", int(now)),
            ("version", VERSION.decode()),
            ("max_connections", self.config.max_connections),
            ("curr_connections", len(self.connections)),
            ("total_connections", self.total_connections),
            ("rejected_connections", self.rejected_connections),
            ("curr_items", stats.curr_items),
            ("total_items", stats.total_items),
            ("bytes", stats.bytes),
            ("limit_maxbytes", stats.limit_maxbytes),
            ("evictions", stats.evictions),
            ("expired_unfetched", stats.expired_unfetched),
            ("threads", 1),
            ("hakeeper_role", self.role.value),
            ("hakeeper_epoch", self.log_epoch),
            ("hakeeper_seen_epoch", self.seen_epoch),
            ("hakeeper_seq", self.seq),
            ("hakeeper_commit", min(self.commit_seq, self.seq)),
            # Which node answered, and where a replica sends what it forwards: a client that
            # asks `stats` on the connection it used knows who served it.
            ("hakeeper_peer", self.config.identity or "-"),
            ("hakeeper_primary", self.primary_address or "-"),
        ]
        return [(name.encode(), str(value).encode()) for name, value in pairs]


def _by_ack(link: StreamLink) -> int:
    return link.acked
