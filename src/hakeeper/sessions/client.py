"""A small asyncio client for the memcached text protocol (and the store's control commands).

One connection, one request at a time, every call under a deadline. The bytes of requests and
replies are `client_codec`'s (shared with the blocking `sync_client`). Used by the session
middleware, the CLI's control commands, the tests and the checker. Failures raise
`SessionStoreError` naming the server and what to do.

With ``secret_file`` the client talks to a node's peer port: it proves the cluster secret
(and checks the node's proof) before any command, which the control commands (``hk_*``)
need. With ``credentials`` (``user password``) it authenticates to a client port that
requires memcached's ASCII auth.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from pathlib import Path
from ssl import SSLContext
from types import TracebackType
from typing import TypeVar

from hakeeper.config.secret_file import read_secret_file
from hakeeper.errors import SessionStoreError
from hakeeper.model.address import split_address
from hakeeper.sessions import client_codec as codec
from hakeeper.sessions.client_codec import LINE, MalformedReply, Value
from hakeeper.sessions.peer_auth import handshake_stream
from hakeeper.sessions.position import Position

T = TypeVar("T")


class SessionClient:
    def __init__(
        self,
        address: str,
        *,
        timeout: float = 5.0,
        secret_file: Path | None = None,
        credentials: bytes | None = None,
        ssl: SSLContext | None = None,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self.secret_file = secret_file
        self.credentials = credentials
        self.ssl = ssl  # a peer port with TLS (hakeeper.sessions.tls)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> SessionClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        host, port = split_address(self.address)
        secret = read_secret_file(self.secret_file) if self.secret_file is not None else None
        try:
            async with asyncio.timeout(self.timeout):
                self._reader, self._writer = await asyncio.open_connection(
                    host, port, ssl=self.ssl, server_hostname=host if self.ssl else None
                )
                if secret is not None:
                    await handshake_stream(self._reader, self._writer, secret)
        except (
            OSError,
            TimeoutError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ) as exc:
            await self.close()
            raise SessionStoreError(
                f"session store {self.address} unreachable or refused the peer handshake "
                f"({exc!r}); is `hakeeper sessions serve` running there, and is this its "
                "peer port with the same secret file?"
                if secret is not None
                else f"session store {self.address} unreachable ({exc!r}); is `hakeeper "
                "sessions serve` running there?"
            ) from exc
        if self.credentials is not None:
            try:
                await self._roundtrip(codec.auth_request(self.credentials))
            except SessionStoreError:
                await self.close()
                raise

    async def close(self) -> None:
        writer = self._writer
        self._reader = self._writer = None
        if writer is not None:
            writer.close()
            try:
                async with asyncio.timeout(self.timeout):
                    await writer.wait_closed()
            except (OSError, TimeoutError):
                pass

    # --- memcached commands ------------------------------------------------------------------

    async def get(self, key: bytes) -> Value | None:
        values = await self._retrieve(codec.retrieval_request(b"get", key))
        return values.get(key)

    async def gets(self, key: bytes) -> Value | None:
        values = await self._retrieve(codec.retrieval_request(b"gets", key))
        return values.get(key)

    async def set(self, key: bytes, data: bytes, *, exptime: int = 0, flags: int = 0) -> bytes:
        return await self._roundtrip(
            codec.storage_request(b"set", key, data, exptime=exptime, flags=flags)
        )

    async def add(self, key: bytes, data: bytes, *, exptime: int = 0, flags: int = 0) -> bytes:
        return await self._roundtrip(
            codec.storage_request(b"add", key, data, exptime=exptime, flags=flags)
        )

    async def cas(
        self, key: bytes, data: bytes, unique: int, *, exptime: int = 0, flags: int = 0
    ) -> bytes:
        """STORED, EXISTS or NOT_FOUND."""
        return await self._roundtrip(
            codec.storage_request(b"cas", key, data, exptime=exptime, flags=flags, unique=unique)
        )

    async def delete(self, key: bytes) -> bytes:
        return await self.command(b"delete %s" % key)

    async def touch(self, key: bytes, exptime: int) -> bytes:
        return await self.command(b"touch %s %d" % (key, exptime))

    # --- control -----------------------------------------------------------------------------

    async def position(self) -> Position:
        return self._position(await self.command(b"hk_position"))

    async def fence(self, epoch: int) -> Position:
        return self._position(await self.command(b"hk_fence %d" % epoch))

    async def promote(self, epoch: int) -> None:
        await self.command(b"hk_promote %d" % epoch)

    async def demote(self) -> None:
        await self.command(b"hk_demote")

    async def dump(self) -> tuple[int, int, bytes]:
        """(log_epoch, seq, snapshot payload) of the node's copy."""
        return await self._exchange(
            codec.command_request(b"hk_dump"),
            codec.dump_reply(self.address),
            ": dump failed ({exc!r})",
        )

    async def adopt(self, log_epoch: int, seq: int, payload: bytes) -> None:
        """Install another node's dump (only if it is at least as up to date)."""
        await self._roundtrip(codec.adopt_request(log_epoch, seq, payload))

    # --- a backup's snapshot and a restore's seed (`snapshot_transfer`) -----------------------

    async def snapshot_open(self) -> tuple[int, int, int, int]:
        """Freeze the primary's store: (token, epoch, seq, keys), once that seq is committed."""
        token, epoch, seq, keys = await self._numbers(b"hk_snapshot", b"SNAPSHOT", 4)
        return token, epoch, seq, keys

    async def snapshot_chunk(self, token: int, size: int, limit: int) -> tuple[bytes, bool]:
        """The next ~``size`` bytes of the open snapshot (refused past ``limit``), and whether
        more follow."""
        return await self._exchange(
            codec.command_request(b"hk_snapchunk %d %d" % (token, size)),
            codec.chunk_reply(self.address, limit),
            " did not answer ({exc!r}); take the snapshot again",
        )

    async def seed_begin(self, source_epoch: int) -> int:
        """Start loading a snapshot taken at ``source_epoch`` into the primary: its token."""
        (token,) = await self._numbers(b"hk_seed_begin %d" % source_epoch, b"SEED", 1)
        return token

    async def seed(self, token: int, piece: bytes) -> int:
        """Feed one piece of the snapshot's entries; the keys loaded so far."""
        (puts,) = await self._exchange(
            codec.seed_request(token, piece),
            codec.numbers_reply(self.address, b"OK", 1),
            " did not answer ({exc!r}); the store is unchanged: seed it again",
        )
        return puts

    async def seed_end(self, token: int, keys: int) -> tuple[int, int]:
        """Replace the store with the loaded snapshot of ``keys`` keys; the (epoch, seq) the
        replicas copy it at."""
        epoch, seq, _ = await self._numbers(b"hk_seed_end %d %d" % (token, keys), b"SEEDED", 3)
        return epoch, seq

    async def _numbers(self, line: bytes, word: bytes, count: int) -> list[int]:
        return await self._exchange(
            codec.command_request(line),
            codec.numbers_reply(self.address, word, count),
            " did not answer ({exc!r}); the outcome is unknown: ask its position",
        )

    # --- plumbing ----------------------------------------------------------------------------

    async def command(self, line: bytes) -> bytes:
        """Send one command line; return its one-line reply (without CRLF)."""
        return await self._roundtrip(codec.command_request(line))

    async def _roundtrip(self, payload: bytes) -> bytes:
        return await self._exchange(
            payload,
            codec.line_reply(self.address),
            " did not answer ({exc!r}); the outcome of the request is unknown: read the key again",
        )

    async def _retrieve(self, payload: bytes) -> dict[bytes, Value]:
        return await self._exchange(
            payload, codec.values_reply(self.address), " did not answer ({exc!r}); retry the read"
        )

    async def _exchange(self, payload: bytes, parser: Generator[int, bytes, T], failure: str) -> T:
        """Send ``payload``, feed ``parser`` the reply's lines and blocks, return its result.

        ``failure`` (after the address, with ``{exc!r}``) says what a lost connection or a
        timeout means for this request; a reply that is not one drops the connection (its
        framing is lost).
        """
        reader, writer = self._streams()
        try:
            async with asyncio.timeout(self.timeout):
                writer.write(payload)
                need = next(parser)
                while True:
                    if need == LINE:
                        chunk = await reader.readuntil(b"\n")
                    else:
                        chunk = await reader.readexactly(need)
                    try:
                        need = parser.send(chunk)
                    except StopIteration as done:
                        result: T = done.value
                        return result
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            await self.close()
            raise SessionStoreError(
                f"session store {self.address}" + failure.format(exc=exc)
            ) from exc
        except MalformedReply:
            await self.close()
            raise

    def _streams(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            raise SessionStoreError(
                f"session store {self.address}: not connected (call connect() first)"
            )
        return self._reader, self._writer

    def _position(self, line: bytes) -> Position:
        try:
            return Position.parse(line)
        except ValueError as exc:
            raise SessionStoreError(f"session store {self.address}: {exc}") from exc
