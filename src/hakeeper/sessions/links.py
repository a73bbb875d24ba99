"""The primary's stream to one replica: hello, snapshot if needed, then batches.

One batch in flight per replica: entries appended while a batch is out go in the next one,
so a busy primary sends few large batches and an idle one sends each entry at once. A
replica behind the kept log, or one that followed another epoch, gets a snapshot first.
A ``STALE`` answer means a newer epoch exists: the primary steps down.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from hakeeper.sessions import entries
from hakeeper.sessions.addresses import split_address
from hakeeper.sessions.position import Position

if TYPE_CHECKING:
    from hakeeper.sessions.node import Node

log = logging.getLogger(__name__)

RETRY_DELAY = 0.2


class StreamRefused(Exception):
    """The replica answered something other than what the stream expects."""


async def run_link(node: Node, peer: str, epoch: int) -> None:
    """Keep ``peer`` in sync while this node is the primary of ``epoch``."""
    host, port = split_address(peer)
    wake = node.wakeup(peer)
    while node.is_primary_of(epoch):
        try:
            await _stream(node, peer, host, port, epoch, wake)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, StreamRefused) as exc:
            log.info("event=sessions.link_down peer=%s epoch=%d error=%r", peer, epoch, exc)
        await asyncio.sleep(RETRY_DELAY)


async def _stream(
    node: Node, peer: str, host: str, port: int, epoch: int, wake: asyncio.Event
) -> None:
    timeout = node.config.write_timeout
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"hk_hello %d %s\r\n" % (epoch, node.config.address.encode()))
        reply = await _reply(node, reader, timeout)
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
            payload = entries.snapshot(node.store)
            node.note_sent(sent)
            writer.write(b"hk_snap %d %d %d\r\n%s\r\n" % (epoch, sent, len(payload), payload))
            if not await _acked(node, reader, timeout, sent):
                return
            log.info(
                "event=sessions.snapshot_sent peer=%s seq=%d bytes=%d", peer, sent, len(payload)
            )
        node.note_acked(peer, sent)
        batch_bytes = node.config.batch_bytes
        while node.is_primary_of(epoch):
            wake.clear()
            if node.seq <= sent:
                await wake.wait()
                continue
            chunk = node.entries_after(sent, batch_bytes)
            if chunk is None:
                return
            last, payload = chunk
            node.note_sent(last)
            writer.write(
                b"hk_batch %d %d %d %d\r\n%s\r\n" % (epoch, sent + 1, last, len(payload), payload)
            )
            if not await _acked(node, reader, timeout, last):
                return
            sent = last
            node.note_acked(peer, last)
    finally:
        writer.close()


async def _reply(node: Node, reader: asyncio.StreamReader, timeout: float) -> bytes | None:
    """The replica's answer line; None (after stepping down) if it knows a newer epoch."""
    async with asyncio.timeout(timeout):
        line = await reader.readuntil(b"\n")
    if line.startswith(b"STALE "):
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            node.observe_epoch(int(parts[1]))
        return None
    return line


async def _acked(node: Node, reader: asyncio.StreamReader, timeout: float, seq: int) -> bool:
    reply = await _reply(node, reader, timeout)
    if reply is None:
        return False
    if reply.strip() == b"ACK %d" % seq:
        return True
    if reply.startswith(b"RESYNC"):
        return False
    raise StreamRefused(f"unexpected stream reply {reply!r}")
