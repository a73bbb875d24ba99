"""A replica's pipelined connection to the primary, carrying forwarded client commands.

Requests go out in order on one connection; replies come back in the same order and are
framed here (one line, or VALUE blocks up to ``END`` for the get family). A request that
cannot be answered (no connection, timeout, connection lost) gets a ``SERVER_ERROR`` reply
in its slot, so the client connection keeps its reply order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import cast

from hakeeper.sessions.boundary import Connection, Slot

log = logging.getLogger(__name__)

ERROR_PREFIXES = (b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")


class _Request:
    __slots__ = ("conn", "multi", "noreply", "slot")

    def __init__(self, slot: Slot, conn: Connection, multi: bool, noreply: bool) -> None:
        self.slot = slot
        self.conn = conn
        self.multi = multi
        self.noreply = noreply


class Upstream(asyncio.Protocol):
    """One connection to the primary's peer port (secret proven); owned by a `Forwarder`."""

    def __init__(self, address: str, on_closed: Callable[[Upstream], None]) -> None:
        self.address = address
        self._on_closed = on_closed
        self.transport: asyncio.Transport | None = None
        self._queue: deque[_Request] = deque()
        self._unsent: list[bytes] = []
        self._buf = bytearray()
        self.closed = False

    # --- used by the node ---------------------------------------------------------------------

    def send(
        self, payload: bytes, multi: bool, noreply: bool, slot: Slot, conn: Connection
    ) -> None:
        self._queue.append(_Request(slot, conn, multi, noreply))
        if self.transport is None:
            self._unsent.append(payload)
        else:
            self.transport.write(payload)

    def oldest_since(self) -> float | None:
        return self._queue[0].slot.since if self._queue else None

    def fail(self, reason: str) -> None:
        """Answer every outstanding request with an error and close."""
        if not self.closed:
            log.warning("event=sessions.upstream_failed primary=%s reason=%s", self.address, reason)
        self.closed = True
        # Never raise here: an address or reason may hold anything (surrogates included).
        error = b"SERVER_ERROR primary %s unreachable (%s)\r\n" % (
            self.address.encode(errors="backslashreplace"),
            reason.encode(errors="backslashreplace").replace(b"\r", b" ").replace(b"\n", b" "),
        )
        while self._queue:
            request = self._queue.popleft()
            request.slot.data = b"" if request.noreply else error
            request.conn.release()
        if self.transport is not None:
            self.transport.close()
        self._on_closed(self)

    # --- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self._unsent:
            self.transport.write(b"".join(self._unsent))
            self._unsent.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.fail("connection lost")

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos = 0
        queue = self._queue
        while queue:
            request = queue[0]
            end = self._reply_end(buf, pos, request.multi)
            if end < 0:
                break
            request.slot.data = b"" if request.noreply else bytes(buf[pos:end])
            pos = end
            queue.popleft()
            request.conn.release()
        del buf[:pos]

    @staticmethod
    def _reply_end(buf: bytearray, pos: int, multi: bool) -> int:
        """Index just past one complete reply starting at ``pos``, or -1 if incomplete."""
        while True:
            nl = buf.find(b"\n", pos)
            if nl < 0:
                return -1
            line = bytes(buf[pos : nl + 1])
            if not multi or line.startswith(ERROR_PREFIXES) or line == b"END\r\n":
                return nl + 1
            if line.startswith(b"VALUE "):
                parts = line.split()
                if len(parts) < 4 or not parts[3].isdigit():
                    return nl + 1
                pos = nl + 1 + int(parts[3]) + 2
                if pos > len(buf):
                    return -1
            else:
                pos = nl + 1
