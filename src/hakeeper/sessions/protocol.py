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
from typing import TYPE_CHECKING, cast

from hakeeper.sessions.auth import MAX_TOKEN_BYTES
from hakeeper.sessions.store import ITEM_OVERHEAD, Outcome, Store
from hakeeper.sessions.wire import (
    INT_MAX,
    KEY_MAX_LENGTH,
    parse_flags,
    parse_i64,
    parse_u64,
    split_tokens,
)

if TYPE_CHECKING:
    from hakeeper.sessions.node import Node

log = logging.getLogger(__name__)

VERSION = b"1.6.18"
ERROR = b"ERROR\r\n"
BAD_FORMAT = b"CLIENT_ERROR bad command line format\r\n"
BAD_CHUNK = b"CLIENT_ERROR bad data chunk\r\n"
BAD_EXPTIME = b"CLIENT_ERROR invalid exptime argument\r\n"
BAD_DELTA = b"CLIENT_ERROR invalid numeric delta argument\r\n"
DELETE_USAGE = b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"
END = b"END\r\n"
OK = b"OK\r\n"
NOREPLY = b"noreply"
STORED = Outcome.STORED
STORED_REPLY = STORED.value
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
BLOCK_TOO_LARGE = b"SERVER_ERROR stream block larger than this node accepts\r\n"

# A reply held for a commit: (reply, seq that must be committed first, Node.now when held).
Held = tuple[bytes, int, float]

STORAGE = {b"set": 0, b"add": 1, b"replace": 2, b"append": 3, b"prepend": 4, b"cas": 5}


class Block:
    """A storage command waiting for its data block, its numbers already parsed."""

    __slots__ = ("code", "exptime", "flags", "key", "noreply", "tokens", "unique", "vlen")

    def __init__(
        self,
        code: int,
        tokens: list[bytes],
        vlen: int,
        flags: int,
        exptime: int,
        unique: int,
        noreply: bool,
    ) -> None:
        self.code = code
        self.tokens = tokens
        self.key = tokens[1] if len(tokens) > 1 else b""
        self.vlen = vlen
        self.flags = flags
        self.exptime = exptime
        self.unique = unique
        self.noreply = noreply


class Slot:
    """A reply waiting for the primary's answer (forwarded); filled in when it arrives."""

    __slots__ = ("data", "since")

    def __init__(self, data: bytes | None, since: float) -> None:
        self.data = data
        self.since = since


def _ready(head: Held | Slot, commit: int) -> bytes | None:
    """A held reply's bytes if it may go out now: answered, and its barrier committed."""
    if isinstance(head, tuple):
        return head[0] if head[1] <= commit else None
    return head.data


class MemcacheProtocol(asyncio.Protocol):
    # Slots: every data_received reads a dozen of these; fixed offsets instead of a dict.
    __slots__ = (
        "_active",
        "_authed",
        "_barrier",
        "_block",
        "_buf",
        "_closing",
        "_held",
        "_idle_since",
        "_out",
        "_outsize",
        "_partial_since",
        "_stalled",
        "_swallow",
        "_write_paused",
        "node",
        "peer",
        "store",
        "transport",
    )

    def __init__(self, node: Node, *, peer: bool = False) -> None:
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

    def _close(self) -> None:
        self._closing = True
        if self.transport is not None:
            self.transport.close()

    def _close_after_reply(self) -> None:
        """Write what this read built, then close (the rest of the input cannot be framed)."""
        transport = self.transport
        self._closing = True
        if transport is not None:
            if self._out:
                transport.write(b"".join(self._out))
                self._out.clear()
            transport.close()

    @staticmethod
    def _long_get_allowed(buf: bytes | bytearray, pos: int) -> bool:
        head = bytes(buf[pos : pos + 110]).lstrip(b" ")
        return len(buf) - pos <= MAX_GET_LINE and (head.startswith((b"get ", b"gets ")))

    # --- commands ----------------------------------------------------------------------------

    def _command(self, line: bytes) -> None:
        tokens = split_tokens(line)
        if not tokens:
            self._out.append(ERROR)
            return
        cmd = tokens[0]
        n = len(tokens)
        if not cmd.startswith(b"hk_"):
            self._barrier = True
        code = STORAGE.get(cmd)
        if code is not None:
            self._storage(code, tokens, n)
        elif cmd == b"get" or cmd == b"gets":
            if n < 2:
                self._out.append(ERROR)
            elif self.node.forwards_reads:
                self._forward_command(line, tokens, False)
            else:
                self._get(tokens, 1, cmd == b"gets", None)
        elif cmd == b"gat" or cmd == b"gats":
            self._gat(line, tokens, n, cmd == b"gats")
        elif cmd == b"delete":
            self._delete(line, tokens, n)
        elif cmd == b"incr" or cmd == b"decr":
            self._incr(line, tokens, n, cmd == b"decr")
        elif cmd == b"touch":
            self._touch(line, tokens, n)
        elif cmd == b"flush_all":
            self._flush_all(line, tokens, n)
        elif cmd == b"version":
            self._out.append(b"VERSION " + VERSION + b"\r\n")
        elif cmd == b"verbosity":
            if n not in (2, 3):
                self._out.append(ERROR)
            elif tokens[-1] != NOREPLY:
                self._out.append(OK)
        elif cmd == b"quit":
            self._close()
        elif cmd == b"stats":
            self._stats(tokens, n)
        elif not self.peer:
            # hk_* included: a client cannot tell the replication commands exist.
            self._out.append(ERROR)
        elif cmd == b"hk_snap" or cmd == b"hk_batch" or cmd == b"hk_adopt":
            nbytes = parse_i64(tokens[-1]) if n >= 2 else None
            if nbytes is None or nbytes < 0:
                self._out.append(ERROR)
            elif nbytes > self.node.block_limit(cmd):
                # Refused from the header: the block is never buffered; its framing is lost.
                log.warning("event=sessions.block_refused command=%s bytes=%d", cmd, nbytes)
                self._out.append(BLOCK_TOO_LARGE)
                self._close_after_reply()
            else:
                self._block = Block(6, tokens, nbytes, 0, 0, 0, False)
        elif cmd.startswith(b"hk_"):
            self._out.append(self.node.control(self, tokens))
        else:
            self._out.append(ERROR)

    def _storage(self, code: int, tokens: list[bytes], n: int) -> None:
        is_cas = code == 5
        if n != (6 if is_cas else 5) and n != (7 if is_cas else 6):
            self._out.append(ERROR)
            return
        noreply = tokens[-1] == NOREPLY
        key = tokens[1]
        flags = parse_flags(tokens[2])
        exptime = parse_i64(tokens[3])
        vlen = parse_i64(tokens[4])
        if len(key) > KEY_MAX_LENGTH or flags is None or exptime is None or vlen is None:
            self._reply(BAD_FORMAT, noreply)
            return
        unique = parse_u64(tokens[5]) if is_cas else 0
        if unique is None:
            self._reply(BAD_FORMAT, noreply)
            return
        if vlen < 0 or vlen > INT_MAX - 2:
            self._reply(BAD_FORMAT, noreply)
            return
        if vlen + len(key) + 48 > self.store.item_size_max:
            self._reply(Outcome.TOO_LARGE.value, noreply)
            self._swallow = vlen + 2
            if code == 0:
                # memcached drops the old value rather than keep serving a stale one.
                if self.node.forwards_writes:
                    self._forward(b"delete %s\r\n" % key, False, True)
                else:
                    self._write_outcome(key, self.store.delete(key))
            return
        self._block = Block(code, tokens, vlen, flags, exptime, unique, noreply)

    def _stored(self, block: Block, value: bytes) -> None:
        code = block.code
        if code == 6:
            self._out.append(self.node.control_block(block.tokens, value))
            return
        tokens = block.tokens
        noreply = block.noreply
        if self.node.forwards_writes:
            flags_exp = b" ".join(tokens[1:5])
            extra = b" " + tokens[5] if code == 5 else b""
            payload = b"%s %s%s\r\n%s\r\n" % (tokens[0], flags_exp, extra, value)
            self._forward(payload, False, noreply)
            return
        store = self.store
        key = block.key
        if code == 0:
            outcome = store.set(key, value, block.flags, block.exptime)
        elif code == 1:
            outcome = store.add(key, value, block.flags, block.exptime)
        elif code == 2:
            outcome = store.replace(key, value, block.flags, block.exptime)
        elif code == 3:
            outcome = store.append(key, value)
        elif code == 4:
            outcome = store.prepend(key, value)
        else:
            outcome = store.cas(key, value, block.flags, block.exptime, block.unique)
        if outcome is Outcome.STORED and self.node.logs_writes:
            self.node.log_key(key)
        if not noreply:
            self._out.append(outcome.value)

    def _write_outcome(self, key: bytes, outcome: Outcome) -> None:
        if self.node.logs_writes and outcome in (Outcome.STORED, Outcome.DELETED):
            self.node.log_key(key)

    def _reply(self, data: bytes, noreply: bool) -> None:
        if not noreply:
            self._out.append(data)

    def _get(self, tokens: list[bytes], first: int, with_cas: bool, exptime: int | None) -> None:
        store = self.store
        out = self._out
        for i in range(first, len(tokens)):
            key = tokens[i]
            if len(key) > KEY_MAX_LENGTH:
                out.append(BAD_FORMAT)
                return
            record = store.lookup(key)
            if record is None:
                continue
            if exptime is not None:
                store.touch(key, exptime)
                if self.node.logs_writes:
                    self.node.log_key(key)
            value, flags, _, unique, _, _ = record
            self._outsize += len(value)
            if with_cas:
                out.append(b"VALUE %s %d %d %d\r\n%s\r\n" % (key, flags, len(value), unique, value))
            else:
                out.append(b"VALUE %s %d %d\r\n%s\r\n" % (key, flags, len(value), value))
        out.append(END)

    def _gat(self, line: bytes, tokens: list[bytes], n: int, with_cas: bool) -> None:
        if n < 2:
            self._out.append(ERROR)
            return
        exptime = parse_i64(tokens[1])
        if exptime is None:
            self._out.append(BAD_EXPTIME)
        elif self.node.forwards_writes:
            self._forward_command(line, tokens, False)
        else:
            self._get(tokens, 2, with_cas, exptime)

    def _delete(self, line: bytes, tokens: list[bytes], n: int) -> None:
        if n < 2 or n > 4:
            self._out.append(ERROR)
            return
        noreply = tokens[-1] == NOREPLY
        if n > 2:
            hold_is_zero = tokens[2] == b"0"
            valid = (n == 3 and (hold_is_zero or noreply)) or (n == 4 and hold_is_zero and noreply)
            if not valid:
                self._reply(DELETE_USAGE, noreply)
                return
        key = tokens[1]
        if len(key) > KEY_MAX_LENGTH:
            self._reply(BAD_FORMAT, noreply)
        elif self.node.forwards_writes:
            self._forward_command(line, tokens, noreply)
        else:
            outcome = self.store.delete(key)
            self._write_outcome(key, outcome)
            self._reply(outcome.value, noreply)

    def _incr(self, line: bytes, tokens: list[bytes], n: int, decrement: bool) -> None:
        if n not in (3, 4):
            self._out.append(ERROR)
            return
        noreply = tokens[-1] == NOREPLY
        key = tokens[1]
        delta = parse_u64(tokens[2])
        if len(key) > KEY_MAX_LENGTH:
            self._reply(BAD_FORMAT, noreply)
        elif delta is None:
            self._reply(BAD_DELTA, noreply)
        elif self.node.forwards_writes:
            self._forward_command(line, tokens, noreply)
        else:
            result = self.store.incr(key, delta, decrement)
            if isinstance(result, Outcome):
                self._reply(result.value, noreply)
            else:
                if self.node.logs_writes:
                    self.node.log_key(key)
                self._reply(b"%d\r\n" % result, noreply)

    def _touch(self, line: bytes, tokens: list[bytes], n: int) -> None:
        if n not in (3, 4):
            self._out.append(ERROR)
            return
        noreply = tokens[-1] == NOREPLY
        key = tokens[1]
        exptime = parse_i64(tokens[2])
        if len(key) > KEY_MAX_LENGTH:
            self._reply(BAD_FORMAT, noreply)
        elif exptime is None:
            self._reply(BAD_EXPTIME, noreply)
        elif self.node.forwards_writes:
            self._forward_command(line, tokens, noreply)
        else:
            outcome = self.store.touch(key, exptime)
            if outcome is Outcome.TOUCHED and self.node.logs_writes:
                self.node.log_key(key)
            self._reply(outcome.value, noreply)

    def _flush_all(self, line: bytes, tokens: list[bytes], n: int) -> None:
        if n > 3:
            self._out.append(ERROR)
            return
        noreply = tokens[-1] == NOREPLY
        delay = 0
        if n != (2 if noreply else 1):
            parsed = parse_i64(tokens[1])
            if parsed is None:
                self._reply(BAD_EXPTIME, noreply)
                return
            delay = parsed
        if self.node.forwards_writes:
            self._forward_command(line, tokens, noreply)
            return
        self.store.flush_all(delay)
        if self.node.logs_writes:
            self.node.log_flush()
        self._reply(OK, noreply)

    def _stats(self, tokens: list[bytes], n: int) -> None:
        if n == 1:
            lines = self.node.stats_lines()
            self._out.append(b"".join(b"STAT %s %s\r\n" % pair for pair in lines) + END)
        elif tokens[1] == b"reset" and n == 2:
            self._out.append(b"RESET\r\n")
        elif tokens[1] in (b"items", b"slabs", b"sizes", b"conns", b"settings"):
            self._out.append(END)
        else:
            self._out.append(ERROR)

    # --- forwarding to the primary -----------------------------------------------------------

    def _forward_command(self, line: bytes, tokens: list[bytes], noreply: bool) -> None:
        if noreply:
            line = b" ".join(tokens[:-1])
        self._forward(line + b"\r\n", tokens[0] in (b"get", b"gets", b"gat", b"gats"), noreply)

    def _forward(self, payload: bytes, multi: bool, noreply: bool) -> None:
        if self._out:
            self._held.append((b"".join(self._out), 0, self.node.now))
            self._out.clear()
        slot = Slot(None, self.node.now)
        self._held.append(slot)
        self.node.forward(payload, multi, noreply, slot, self)
