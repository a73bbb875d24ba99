"""The primary's stream to one replica: hello, snapshot if needed, then pipelined batches.

A `StreamLink` is an ``asyncio.Protocol`` on the replica's peer port, connected once both
sides proved the cluster secret (`peer_auth.open_peer`). The hand-shake
(``hk_hello``, the replica's position, a snapshot if it is behind the kept log or followed
another epoch) runs in `run_link`; then the link is attached to the node, which writes to it at
most once per event-loop iteration: everything appended since the last write, as one
``hk_batch`` (`Node` schedules that flush with ``call_soon`` on the first append of an
iteration). Batches are pipelined: the next one goes out without waiting for the previous
``ACK``, up to `WINDOW` batches in flight (a replica that stops reading is not sent the
whole log; what it lacks stays with the primary, unacknowledged). The replica answers each
batch with ``ACK last``; the link hands the node only the highest ACK of each read (acks are
cumulative). ``RESYNC`` (gap or corrupt batch) closes the
link and the next connection starts again from the replica's position; ``STALE e`` means a
newer epoch exists and the primary steps down.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from ssl import SSLContext
from typing import Protocol, cast

from hakeeper.config.secret_file import SecretFile
from hakeeper.errors import ConfigError
from hakeeper.sessions.node_config import NodeConfig
from hakeeper.sessions.peer_auth import open_peer
from hakeeper.sessions.position import Position

log = logging.getLogger(__name__)

RETRY_DELAY = 0.2
WINDOW = 4  # batches in flight per replica
# A replica decodes and installs a snapshot at well over this (a million 100-byte items,
# ~140 MB, in ~3 s on a loaded 2-core machine): its ACK may take this much longer than a
# batch's, or a large store's laggard would time out, reconnect and be sent it again forever.
SNAPSHOT_BYTES_PER_S = 10e6


class Primary(Protocol):
    """The primary node, as its streams use it (`node.Node`; the node imports this module)."""

    config: NodeConfig
    now: float  # the node's coarse monotonic clock
    seq: int  # the last entry logged
    peer_ssl: SSLContext | None

    def secret_source(self) -> SecretFile: ...
    def is_primary_of(self, epoch: int) -> bool: ...
    def observe_epoch(self, epoch: int) -> None: ...
    def entries_after(self, seq: int, limit_bytes: int) -> tuple[int, bytes] | None: ...
    def catch_up_snapshot(self) -> bytes: ...
    def note_sent(self, last: int) -> None: ...
    def note_acked(self, peer: str, seq: int) -> None: ...
    def schedule_flush(self) -> None: ...
    def attach_link(self, link: StreamLink) -> None: ...
    def detach_link(self, link: StreamLink) -> None: ...


class StreamRefused(Exception):
    """The replica answered something other than what the stream expects."""


class StreamLink(asyncio.Protocol):
    """One connection from the primary to a replica."""

    def __init__(self, node: Primary, peer: str, epoch: int) -> None:
        self.node = node
        self.peer = peer
        self.epoch = epoch
        self.transport: asyncio.Transport | None = None
        self.sent = 0  # last seq written to the replica
        self.acked = 0  # last seq the replica acknowledged
        self.unacked_since = 0.0  # node.now when the oldest unacknowledged batch went out
        self.streaming = False
        self._in_flight: deque[int] = deque()  # last seq of each unacknowledged batch
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buf = bytearray()
        self._lines: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None

    # --- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.streaming = False
        if not self.closed.done():
            self.closed.set_result(None)
        self._wake()

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        start = 0
        if not self.streaming:
            while (nl := buf.find(b"\n", start)) >= 0:
                self._lines.append(bytes(buf[start : nl + 1]))
                start = nl + 1
            del buf[:start]
            self._wake()
            return
        acked = 0
        while (nl := buf.find(b"\n", start)) >= 0:
            line = bytes(buf[start : nl + 1])
            start = nl + 1
            if not line.startswith(b"ACK "):
                self._refused(line)
                return
            try:
                seq = int(line[4:])
            except ValueError:
                self._refused(line)
                return
            if seq > acked:
                acked = seq
        del buf[:start]
        if acked > self.acked:
            self.acked = acked
            self.unacked_since = self.node.now
            in_flight = self._in_flight
            window_was_full = len(in_flight) >= WINDOW
            while in_flight and in_flight[0] <= acked:
                in_flight.popleft()
            self.node.note_acked(self.peer, acked)
            if window_was_full:
                self.node.schedule_flush()

    @property
    def window_open(self) -> bool:
        return len(self._in_flight) < WINDOW

    # --- used by the hand-shake and the node -------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is None:
            raise ConnectionResetError(f"stream to {self.peer} closed")
        self.transport.write(data)

    def send_batch(self, last: int, payload: bytes) -> None:
        """Write entries ``sent + 1 .. last`` as one batch (pipelined: no wait for the ACK)."""
        if self.transport is None:
            return
        if self.sent == self.acked:
            self.unacked_since = self.node.now
        self.transport.write(
            b"hk_batch %d %d %d %d\r\n%s\r\n"
            % (self.epoch, self.sent + 1, last, len(payload), payload)
        )
        self.sent = last
        self._in_flight.append(last)

    def start_streaming(self, seq: int) -> None:
        self.sent = self.acked = seq
        self.streaming = True

    def close(self, reason: str | None = None) -> None:
        if reason is not None:
            log.info(
                "event=sessions.link_closed peer=%s epoch=%d reason=%s",
                self.peer,
                self.epoch,
                reason,
            )
        self.streaming = False
        if self.transport is not None:
            self.transport.close()

    async def reply(self, timeout: float) -> bytes | None:
        """The replica's next answer line; None (after stepping down) if it knows a newer epoch."""
        async with asyncio.timeout(timeout):
            while not self._lines:
                if self.closed.done():
                    raise ConnectionResetError(f"stream to {self.peer} closed")
                self._waiter = asyncio.get_running_loop().create_future()
                await self._waiter
        line = self._lines.popleft()
        if line.startswith(b"STALE "):
            self._observe_stale(line)
            return None
        return line

    # --- internals ---------------------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._waiter = None

    def _observe_stale(self, line: bytes) -> None:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            self.node.observe_epoch(int(parts[1]))

    def _refused(self, line: bytes) -> None:
        if line.startswith(b"STALE "):
            self._observe_stale(line)
            self.close(f"replica knows a newer epoch ({line.strip()!r})")
        elif line.startswith(b"RESYNC"):
            self.close(f"replica asks to resync ({line.strip()!r})")
        else:
            log.warning(
                "event=sessions.link_refused peer=%s reply=%r fix=check that the peer runs the "
                "same hakeeper version",
                self.peer,
                line,
            )
            self.close()


async def run_link(node: Primary, peer: str, epoch: int) -> None:
    """Keep ``peer`` in sync while this node is the primary of ``epoch``."""
    while node.is_primary_of(epoch):
        try:
            await _stream(node, peer, epoch)
        except (OSError, TimeoutError, ValueError, OverflowError, StreamRefused) as exc:
            # OSError includes a refused proof of the secret (PeerAuthError); ValueError and
            # OverflowError a peer address that is not host:port.
            log.info("event=sessions.link_down peer=%s epoch=%d error=%r", peer, epoch, exc)
        except ConfigError as exc:
            log.error("event=sessions.link_down peer=%s epoch=%d error=%s", peer, epoch, exc)
        await asyncio.sleep(RETRY_DELAY)


async def _stream(node: Primary, peer: str, epoch: int) -> None:
    """One connection: hand-shake, then stream until the connection ends."""
    timeout = node.config.write_timeout
    link = await open_peer(
        peer,
        node.secret_source(),
        lambda: StreamLink(node, peer, epoch),
        timeout,
        ssl=node.peer_ssl,
    )
    try:
        link.write(b"hk_hello %d %s\r\n" % (epoch, node.config.identity.encode()))
        reply = await link.reply(timeout)
        if reply is None:
            return
        try:
            position = Position.parse(reply)
        except ValueError as exc:
            raise StreamRefused(str(exc)) from exc
        if (
            position.log_epoch == epoch
            and position.seq <= node.seq
            and node.entries_after(position.seq, 0) is not None
        ):
            sent = position.seq
        else:
            sent = node.seq
            payload = node.catch_up_snapshot()
            node.note_sent(sent)
            link.write(b"hk_snap %d %d %d\r\n%s\r\n" % (epoch, sent, len(payload), payload))
            reply = await link.reply(timeout + len(payload) / SNAPSHOT_BYTES_PER_S)
            if reply is None or reply.startswith(b"RESYNC"):
                return
            if reply.strip() != b"ACK %d" % sent:
                raise StreamRefused(f"unexpected stream reply {reply!r}")
            log.info(
                "event=sessions.snapshot_sent peer=%s seq=%d bytes=%d", peer, sent, len(payload)
            )
        link.start_streaming(sent)
        node.attach_link(link)
        await link.closed
    finally:
        node.detach_link(link)
        link.close()
