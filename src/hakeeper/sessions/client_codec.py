"""The client's side of the memcached text protocol, without I/O: requests and replies.

Both clients (`client.SessionClient` on asyncio streams, `sync_client.SyncClient` on a
blocking socket) build their requests here and read their replies through the parsers here,
so the bytes on the wire and the errors they raise are written once.

A reply parser is a generator: it yields what it needs next, `LINE` (one line, up to and
including its ``\\n``) or a number of bytes, is sent those bytes, and returns the decoded
reply. Each client drives it with its own reads:

    parser = values_reply(address)
    need = next(parser)
    while True:
        chunk = read_line() if need == LINE else read_exactly(need)
        need = parser.send(chunk)      # ... until StopIteration carries the reply

Errors raise `SessionStoreError` naming the server: `ErrorReply` for an error the server
answered (the connection is still usable), `MalformedReply` for bytes that are not a reply
(the stream has lost its framing: drop the connection).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

from hakeeper.errors import SessionStoreError

ERROR_PREFIXES = (b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")
BUSY_PREFIX = b"SERVER_ERROR busy:"
LINE = -1  # what a parser yields for "the next line"


class ErrorReply(SessionStoreError):
    """The server answered an error line (``ERROR``, ``CLIENT_ERROR``, ``SERVER_ERROR``)."""


class BusyReply(ErrorReply):
    """The server answered ``SERVER_ERROR busy: ...``: what was asked waits for a transfer
    already under way (one snapshot is read at a time); the same request may succeed later."""


class MalformedReply(SessionStoreError):
    """The server's bytes are not the reply expected: the connection's framing is lost."""


@dataclass(frozen=True, slots=True)
class Value:
    data: bytes
    flags: int
    cas: int | None


# --- requests ---------------------------------------------------------------------------------


def command_request(line: bytes) -> bytes:
    """One command line (``delete k``, ``touch k 60``, ``hk_position``)."""
    return line + b"\r\n"


def retrieval_request(cmd: bytes, key: bytes) -> bytes:
    """``get`` or ``gets`` of one key."""
    return b"%s %s\r\n" % (cmd, key)


def storage_request(
    cmd: bytes,
    key: bytes,
    data: bytes,
    *,
    exptime: int = 0,
    flags: int = 0,
    unique: int | None = None,
) -> bytes:
    """``set``/``add``/``cas`` (``unique`` for cas) of ``data`` under ``key``."""
    extra = b"" if unique is None else b" %d" % unique
    header = b"%s %s %d %d %d%s\r\n" % (cmd, key, flags, exptime, len(data), extra)
    return header + data + b"\r\n"


def auth_request(credentials: bytes) -> bytes:
    """memcached's ASCII authentication: a ``set`` whose data is ``user password``."""
    return storage_request(b"set", b"auth", credentials)


def adopt_request(log_epoch: int, seq: int, payload: bytes) -> bytes:
    """``hk_adopt``: install another node's dump."""
    return b"hk_adopt %d %d %d\r\n%s\r\n" % (log_epoch, seq, len(payload), payload)


def seed_request(token: int, piece: bytes) -> bytes:
    """``hk_seed``: one piece of a snapshot being loaded."""
    return b"hk_seed %d %d\r\n%s\r\n" % (token, len(piece), piece)


# --- replies ----------------------------------------------------------------------------------


def checked(address: str, line: bytes) -> bytes:
    """``line`` without its line end; `ErrorReply` if the server answered an error."""
    line = line.rstrip(b"\r\n")
    if line.startswith(ERROR_PREFIXES):
        error = BusyReply if line.startswith(BUSY_PREFIX) else ErrorReply
        raise error(f"session store {address} answered {line.decode()!r}")
    return line


def _number(address: str, token: bytes, line: bytes) -> int:
    if not token.isdigit():
        raise MalformedReply(f"session store {address}: bad reply {line!r}")
    return int(token)


def line_reply(address: str) -> Generator[int, bytes, bytes]:
    """A one-line reply (``STORED``, ``DELETED``, a position), without its line end."""
    return checked(address, (yield LINE))


def values_reply(address: str) -> Generator[int, bytes, dict[bytes, Value]]:
    """``VALUE <key> <flags> <bytes> [<cas>]`` blocks up to ``END``: the values by key."""
    values: dict[bytes, Value] = {}
    while True:
        line = checked(address, (yield LINE))
        if line == b"END":
            return values
        parts = line.split(b" ")
        if parts[0] != b"VALUE" or len(parts) not in (4, 5):
            raise MalformedReply(f"session store {address}: bad reply {line!r}")
        flags = _number(address, parts[2], line)
        size = _number(address, parts[3], line)
        cas = _number(address, parts[4], line) if len(parts) == 5 else None
        block = yield size + 2
        if block[size:] != b"\r\n":
            raise MalformedReply(f"session store {address}: value of {parts[1]!r} not framed")
        values[parts[1]] = Value(block[:size], flags, cas)


def dump_reply(address: str) -> Generator[int, bytes, tuple[int, int, bytes]]:
    """``SNAP <log_epoch> <seq> <bytes>`` and the snapshot: (log_epoch, seq, payload)."""
    line = checked(address, (yield LINE))
    parts = line.split(b" ")
    if len(parts) != 4 or parts[0] != b"SNAP":
        raise MalformedReply(f"session store {address}: bad dump {parts!r}")
    log_epoch, seq, size = (_number(address, part, line) for part in parts[1:])
    block = yield size + 2
    return log_epoch, seq, block[:size]


def numbers_reply(address: str, word: bytes, count: int) -> Generator[int, bytes, list[int]]:
    """``<word> n1 .. n<count>`` (``SNAPSHOT``, ``SEED``, ``SEEDED``, ``OK``): the numbers."""
    line = checked(address, (yield LINE))
    parts = line.split(b" ")
    if len(parts) != count + 1 or parts[0] != word:
        raise MalformedReply(f"session store {address}: expected {word!r}, got {line[:80]!r}")
    return [_number(address, part, line) for part in parts[1:]]


def chunk_reply(address: str, limit: int) -> Generator[int, bytes, tuple[bytes, bool]]:
    """``CHUNK <bytes> <more>`` and at most ``limit`` bytes: (the chunk, whether more follow)."""
    line = checked(address, (yield LINE))
    parts = line.split(b" ")
    if len(parts) != 3 or parts[0] != b"CHUNK" or parts[2] not in (b"0", b"1"):
        raise MalformedReply(f"session store {address}: bad snapshot chunk {line[:80]!r}")
    size = _number(address, parts[1], line)
    if size > limit:
        raise MalformedReply(
            f"session store {address}: snapshot chunk of {size} bytes, more than {limit}"
        )
    block = yield size + 2
    if block[size:] != b"\r\n":
        raise MalformedReply(f"session store {address}: snapshot chunk not framed")
    return block[:size], parts[2] == b"1"
