"""The memcached text protocol server side: one `MemcacheProtocol` per client connection.

Bytes accumulate in one bytearray; complete command lines (and their data blocks) are parsed
in place, answered into one output list and written with one ``transport.write`` per read, so
pipelined requests cost one syscall per batch. Replies follow memcached 1.6.18 byte for byte,
including its quirks (see docs/sessions.md). Malformed input gets memcached's error reply and
never affects other connections.

On a replicated primary every reply is held until the replication stream has committed an
entry issued after the request arrived (writes and reads alike), so a client never sees a
value a later primary could lose. On a replica, valid commands are forwarded to the primary
and their replies come back in order with the local ones.

The general command parser and handlers are `commands.Commands`, a mixin of this class.
The connection knows the node only as `boundary.NodeSide` (the replication side is not
imported here).
A connection is a client's (the client port: every ``hk_*`` command is an unknown command,
``ERROR``, as memcached answers it) or a peer's (the peer port, after `peer_auth`'s
handshake proved the cluster secret: the replication and control commands too). Bounds:
a connection stops being read while the value bytes of its unwritten replies exceed
`OUTPUT_LIMIT` (or it waits for `MAX_HELD` forwarded replies), and resumes once they are
written; an ``hk_*`` block larger than the node's bound is refused from its header.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from typing import cast

from hakeeper.sessions.auth import MAX_TOKEN_BYTES
from hakeeper.sessions.boundary import Held, NodeSide, Slot
from hakeeper.sessions.commands import (
    BAD_CHUNK,
    END,
    STORED,
    STORED_REPLY,
    Block,
    Commands,
)
from hakeeper.sessions.store import ITEM_OVERHEAD, Store
from hakeeper.sessions.wire import KEY_MAX_LENGTH, parse_i64, split_tokens

log = logging.getLogger(__name__)

# `set <key> <flags> <exptime> <bytes>` in its common form; anything else (noreply, extra
# spaces, signs, big numbers, long keys) takes the general parser.
set_line = re.compile(rb"set ([^ \r\n]{1,250}) ([0-9]{1,9}) ([0-9]{1,10}) ([0-9]{1,9})\r?\n").match
# A replica's stream batch, `hk_batch <epoch> <first> <last> <bytes>`, in the form the primary
# writes it; anything else takes the general parser (and its errors).
batch_line = re.compile(
    rb"hk_batch ([0-9]{1,18}) ([0-9]{1,18}) ([0-9]{1,18}) ([0-9]{1,10})\r\n"
).match
# memcached closes a connection whose pending line grows past this without a newline,
# unless it is a long multi-get.
MAX_LINE = 2048
MAX_GET_LINE = 1 << 20
# A connection is not read while its built but unwritten replies hold more value bytes than
# this (a pipelined read of `get big` repeated must not build gigabytes in one read), nor,
# on a replica, while more than MAX_HELD replies wait (forwarded requests in flight).
OUTPUT_LIMIT = 4 << 20
MAX_HELD = 64
TOO_MANY_CONNECTIONS = b"ERROR Too many open connections\r\n"
UNAUTHENTICATED = b"CLIENT_ERROR unauthenticated\r\n"
AUTH_FAILURE = b"CLIENT_ERROR authentication failure\r\n"
AUTH_FORMAT = b"CLIENT_ERROR bad authentication token format\r\n"


def _ready(head: Held | Slot, commit: int) -> bytes | None:
    """A held reply's bytes if it may go out now: answered, and its barrier committed."""
    if isinstance(head, tuple):
        return head[0] if head[1] <= commit else None
    return head.data


class MemcacheProtocol(Commands, asyncio.Protocol):
    # The connection's state is in Commands' __slots__ (fixed offsets instead of a dict).
    __slots__ = ()

    def __init__(self, node: NodeSide, *, peer: bool = False) -> None:
        self.node = node
        # A peer proved the cluster secret (peer port); a client may not use hk_* commands.
        self.peer = peer
        self._authed = peer or node.client_auth is None
        self.store: Store = node.store
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._block: Block | None = None
        self._swallow = 0
        self._out: list[bytes] = []
        # Replies not yet written, in order: (reply, seq to be committed, since) tuples held
        # for a commit (a tuple costs ~7 ns to build, a Slot ~230 ns), Slots for forwards.
        self._held: deque[Held | Slot] = deque()
        self._closing = False
        # Set by any client command in this read; control commands (hk_*) need no barrier.
        self._barrier = False
        # Value bytes of replies built since everything was last handed to the transport.
        self._outsize = 0
        # Parsing stopped with input left in _buf (output bound); reading is paused.
        self._stalled = False
        self._write_paused = False
        # Idle and slow-request timeouts, checked by the node's sweep (no clock read here).
        self._active = True
        self._idle_since = node.now
        self._partial_since = node.now

    # --- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if not self.node.connection_opened(self):
            # Beyond max_connections, as memcached: say so and close.
            self.transport.write(TOO_MANY_CONNECTIONS)
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._held.clear()
        # Forwarded requests still out answer into nothing once the client is gone.
        self.transport = None
        self.node.connection_closed(self)

    def pause_writing(self) -> None:
        # A client not reading its replies stops being read from: memory stays bounded.
        self._write_paused = True
        transport = self.transport
        if transport is not None and transport.is_reading():
            transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._unstall()

    def data_received(self, data: bytes) -> None:
        self._active = True
        if not self._authed:
            self._unauthenticated(data)
            return
        if self._buf:
            # Only an incomplete tail waits here: a partial line or a data block. Until it can
            # complete, accumulate without parsing (large values arrive in many reads).
            pending = self._buf
            pending += data
            if self._stalled:
                return
            block = self._block
            if block is not None:
                if len(pending) < block.vlen + 2:
                    return
            elif b"\n" not in data:
                if len(pending) > MAX_LINE and not self._long_get_allowed(pending, 0):
                    self._close()
                return
            buf = bytes(pending)
            self._buf = bytearray()
        else:
            buf = data
        node = self.node
        store = self.store
        out = self._out
        pos = 0
        size = len(buf)
        while pos < size and not self._closing:
            if self._swallow:
                take = min(self._swallow, size - pos)
                self._swallow -= take
                pos += take
                continue
            block = self._block
            if block is not None:
                end = pos + block.vlen
                if end + 2 > size:
                    break
                self._block = None
                if buf[end : end + 2] != b"\r\n":
                    out.append(BAD_CHUNK)
                else:
                    self._stored(block, buf[pos:end])
                pos = end + 2
                continue
            # Fast paths for the two commands that make up nearly all traffic, in their
            # plain form (single spaces, decimal numbers, the whole data block in this read).
            # Anything else, including every error case, goes through _command.
            first = buf[pos]
            if first == 115 and not node.forwards_writes:  # "s"
                match = set_line(buf, pos)
                if match is not None:
                    key, flags, exptime, nbytes = match.groups()
                    start = match.end()
                    stop = start + int(nbytes)
                    if (
                        stop + 2 <= size
                        and buf[stop] == 13
                        and buf[stop + 1] == 10
                        and stop - start + len(key) + ITEM_OVERHEAD <= store.item_size_max
                    ):
                        outcome = store.set(
                            key,
                            buf[start:stop],
                            0 if flags == b"0" else int(flags),
                            0 if exptime == b"0" else int(exptime),
                        )
                        if outcome is STORED:
                            out.append(STORED_REPLY)
                            if node.logs_writes:
                                node.log_key(key)
                        else:
                            out.append(outcome.value)
                        self._barrier = True
                        pos = stop + 2
                        continue
            elif first == 104 and self.peer:  # "h"
                match = batch_line(buf, pos)
                if match is not None:
                    start = match.end()
                    stop = start + int(match[4])
                    if stop + 2 <= size and buf[stop] == 13 and buf[stop + 1] == 10:
                        out.append(
                            node.stream_batch(
                                int(match[1]), int(match[2]), int(match[3]), buf[start:stop]
                            )
                        )
                        pos = stop + 2
                        continue
            nl = buf.find(b"\n", pos)
            if nl < 0:
                if size - pos > MAX_LINE and not self._long_get_allowed(buf, pos):
                    self._close()
                break
            end = nl - 1 if nl > pos and buf[nl - 1] == 13 else nl
            if first == 103 and buf.startswith(b"get ", pos) and not node.forwards_reads:
                key = buf[pos + 4 : end]
                if 0 < len(key) <= KEY_MAX_LENGTH and b" " not in key:
                    record = store.lookup(key)
                    if record is None:
                        out.append(END)
                    else:
                        value = record[0]
                        out.append(
                            b"VALUE %s %d %d\r\n%s\r\nEND\r\n" % (key, record[1], len(value), value)
                        )
                        self._outsize += len(value)
                    self._barrier = True
                    pos = nl + 1
                    if self._outsize > OUTPUT_LIMIT:
                        self._stall()
                        break
                    continue
            line = buf[pos:end]
            pos = nl + 1
            self._command(line)
            if self._outsize > OUTPUT_LIMIT or (
                len(self._held) > MAX_HELD and node.forwards_writes
            ):
                self._stall()
                break
        if pos < size and not self._closing:
            self._buf = bytearray(buf[pos:])
            self._partial_since = node.now
        if node.holds_replies or self._held:
            self._flush()
        elif out:
            transport = self.transport
            if transport is not None:
                transport.write(b"".join(out))
            out.clear()
            self._outsize = 0
            if self._stalled:
                self._unstall_soon()

    # --- back-pressure -----------------------------------------------------------------------

    def _stall(self) -> None:
        """Stop parsing this connection's input until its replies are written."""
        self._stalled = True
        transport = self.transport
        if transport is not None and transport.is_reading():
            transport.pause_reading()

    def _unstall_soon(self) -> None:
        if not self._write_paused:
            asyncio.get_running_loop().call_soon(self._unstall)

    def _unstall(self) -> None:
        """The transport drained (or replies were written): read on, after parsing what a
        stall left, once that stall's replies are all out."""
        transport = self.transport
        if transport is None or self._closing or self._write_paused:
            return
        if self._stalled:
            if self._held:
                return  # release() calls back once they are written
            self._outsize = 0
            self._stalled = False
            rest = bytes(self._buf)
            self._buf = bytearray()
            if rest:
                self.data_received(rest)
        if not (self._stalled or self._write_paused or self._closing) and (
            not transport.is_reading()
        ):
            transport.resume_reading()

    def sweep(self, now: float, idle_timeout: float, request_timeout: float) -> None:
        """The node's periodic check: close a client that sends nothing, or a request that
        does not complete (a byte at a time), like a proxy's idle and request timeouts."""
        if self.peer or self._closing:
            return
        if self._buf and not self._stalled and now - self._partial_since > request_timeout:
            self.abort(f"request not complete within {request_timeout:g}s")
        elif self._active:
            self._active = False
            self._idle_since = now
        elif idle_timeout > 0 and now - self._idle_since > idle_timeout and not self._held:
            log.info("event=sessions.idle_closed idle_timeout=%g", idle_timeout)
            self._close()

    # --- memcached's ASCII authentication ----------------------------------------------------

    def _unauthenticated(self, data: bytes) -> None:
        """Before auth only `set <key> <flags> <exptime> <n>` with data `user password` counts."""
        buf = self._buf
        buf += data
        transport = self.transport
        while buf and not self._closing and transport is not None:
            nl = buf.find(b"\n")
            if nl < 0:
                if len(buf) > MAX_LINE:
                    self._close()
                return
            line = bytes(buf[: nl - 1 if nl > 0 and buf[nl - 1] == 13 else nl])
            tokens = split_tokens(line)
            vlen = parse_i64(tokens[4]) if len(tokens) in (5, 6) else None
            if not tokens or tokens[0] != b"set" or vlen is None or vlen < 0:
                transport.write(UNAUTHENTICATED)
                del buf[: nl + 1]
                continue
            if vlen > MAX_TOKEN_BYTES:
                transport.write(AUTH_FORMAT)
                self._close()
                return
            end = nl + 1 + vlen
            if len(buf) < end + 2:
                self._partial_since = self.node.now
                return
            auth = self.node.client_auth
            verdict = auth.check(bytes(buf[nl + 1 : end])) if auth is not None else True
            if buf[end : end + 2] != b"\r\n" or verdict is None:
                transport.write(AUTH_FORMAT)
            elif not verdict:
                log.warning(
                    "event=sessions.auth_failed peer=%s", transport.get_extra_info("peername")
                )
                transport.write(AUTH_FAILURE)
            else:
                transport.write(STORED_REPLY)
                self._authed = True
                rest = bytes(buf[end + 2 :])
                self._buf = bytearray()
                if rest:
                    self.data_received(rest)
                return
            del buf[: end + 2]

    # --- output ------------------------------------------------------------------------------

    def _flush(self) -> None:
        """End of a read on a primary, or with replies still held: hold this read's replies."""
        out = self._out
        node = self.node
        held = self._held
        need = 0
        if self._barrier and node.holds_replies:
            # A write of this read already put an entry not yet sent (the usual case): its seq
            # is the barrier, without a reply_barrier call.
            need = node.seq
            if need <= node.sent_max:
                need = node.reply_barrier()
        self._barrier = False
        if out or need:
            held.append((b"".join(out), need, node.now))
            out.clear()
        self.release()

    def release(self) -> None:
        """Write every held reply from the head that is ready (answered and committed).

        A commit pass on the node has taken this connection out of ``node.waiting``; it goes
        back in while something is still held (on a primary, the usual case after a read:
        nothing can go out before the next commit).
        """
        held = self._held
        if not held or self.transport is None:
            return
        node = self.node
        commit = node.commit_seq
        ready: list[bytes] = []
        while held:
            data = _ready(held[0], commit)
            if data is None:
                break
            ready.append(data)
            held.popleft()
        if ready:
            self.transport.write(ready[0] if len(ready) == 1 else b"".join(ready))
        if held:
            node.waiting.add(self)
        else:
            self._outsize = 0
            if not node.holds_replies:
                node.waiting.discard(self)
            if self._stalled:
                self._unstall_soon()

    def oldest_held(self) -> float | None:
        if not self._held:
            return None
        head = self._held[0]
        return head[2] if isinstance(head, tuple) else head.since

    def abort(self, reason: str) -> None:
        """Drop the connection: its held replies can no longer be given honestly."""
        log.warning("event=sessions.connection_aborted reason=%s", reason)
        self._held.clear()
        self._close()

    @staticmethod
    def _long_get_allowed(buf: bytes | bytearray, pos: int) -> bool:
        head = bytes(buf[pos : pos + 110]).lstrip(b" ")
        return len(buf) - pos <= MAX_GET_LINE and (head.startswith((b"get ", b"gets ")))
