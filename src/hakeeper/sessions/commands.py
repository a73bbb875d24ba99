"""The memcached commands beyond the two fast paths, as a mixin of `MemcacheProtocol`.

Each handler parses its tokens with memcached 1.6.18's rules and appends its reply to the
connection's output (or forwards the command to the primary, on a replica). Control and
stream commands (``hk_*``) reach the node only on a peer connection; a client connection
answers them ``ERROR``, as memcached answers any unknown command.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import cast

from hakeeper.sessions.boundary import Connection, Held, NodeSide, Slot
from hakeeper.sessions.store import Outcome, Store
from hakeeper.sessions.wire import (
    INT_MAX,
    KEY_MAX_LENGTH,
    VERSION,
    parse_flags,
    parse_i64,
    parse_u64,
    split_tokens,
)

log = logging.getLogger(__name__)

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
BLOCK_TOO_LARGE = b"SERVER_ERROR stream block larger than this node accepts\r\n"

# Control commands whose reply waits, like a client's, until the primary's position at their
# arrival is committed: a snapshot is handed out only then.
BARRIER_CONTROL = frozenset((b"hk_snapshot",))
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


class Commands:
    """The general command parser and handlers; the state slots, which `MemcacheProtocol`
    initialises and its fast paths use."""

    # Every connection's state (MemcacheProtocol adds none): data_received reads a dozen of
    # these per read; slots give fixed offsets instead of a dict.
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
    node: NodeSide
    store: Store
    transport: asyncio.Transport | None
    peer: bool
    _out: list[bytes]
    _block: Block | None
    _swallow: int
    _held: deque[Held | Slot]
    _barrier: bool
    _outsize: int
    _closing: bool

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

    # --- commands ----------------------------------------------------------------------------

    def _command(self, line: bytes) -> None:
        tokens = split_tokens(line)
        if not tokens:
            self._out.append(ERROR)
            return
        cmd = tokens[0]
        n = len(tokens)
        if not cmd.startswith(b"hk_") or cmd in BARRIER_CONTROL:
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
        elif cmd == b"hk_snap" or cmd == b"hk_batch" or cmd == b"hk_adopt" or cmd == b"hk_seed":
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
            reply = self.node.control(tokens)
            self._out.append(reply)
            # A snapshot's chunks are large: count them against the output bound.
            self._outsize += len(reply)
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
        self.node.forward(payload, multi, noreply, slot, cast(Connection, self))
