"""A small asyncio client for the memcached text protocol (and the store's control commands).

One connection, one request at a time, every call under a deadline. Used by the session
middleware, the CLI's control commands, the tests and the checker. Failures raise
`SessionStoreError` naming the server and what to do.

With ``secret_file`` the client talks to a node's peer port: it proves the cluster secret
(and checks the node's proof) before any command, which the control commands (``hk_*``)
need. With ``credentials`` (``user password``) it authenticates to a client port that
requires memcached's ASCII auth.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from ssl import SSLContext
from types import TracebackType

from hakeeper.config.secret_file import read_secret_file
from hakeeper.errors import SessionStoreError
from hakeeper.model.address import split_address
from hakeeper.sessions.peer_auth import handshake_stream
from hakeeper.sessions.position import Position

ERROR_PREFIXES = (b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")


@dataclass(frozen=True, slots=True)
class Value:
    data: bytes
    flags: int
    cas: int | None


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
            data = self.credentials
            try:
                await self._roundtrip(b"set auth 0 0 %d\r\n%s\r\n" % (len(data), data))
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
        values = await self._retrieve(b"get %s\r\n" % key)
        return values.get(key)

    async def gets(self, key: bytes) -> Value | None:
        values = await self._retrieve(b"gets %s\r\n" % key)
        return values.get(key)

    async def set(self, key: bytes, data: bytes, *, exptime: int = 0, flags: int = 0) -> bytes:
        return await self._store(b"set", key, data, exptime, flags, b"")

    async def add(self, key: bytes, data: bytes, *, exptime: int = 0, flags: int = 0) -> bytes:
        return await self._store(b"add", key, data, exptime, flags, b"")

    async def cas(
        self, key: bytes, data: bytes, unique: int, *, exptime: int = 0, flags: int = 0
    ) -> bytes:
        """STORED, EXISTS or NOT_FOUND."""
        return await self._store(b"cas", key, data, exptime, flags, b" %d" % unique)

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
        reader, writer = self._streams()
        try:
            async with asyncio.timeout(self.timeout):
                writer.write(b"hk_dump\r\n")
                parts = self._checked(await reader.readuntil(b"\n")).split(b" ")
                if len(parts) != 4 or parts[0] != b"SNAP":
                    raise SessionStoreError(f"session store {self.address}: bad dump {parts!r}")
                payload = await reader.readexactly(int(parts[3]) + 2)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            await self.close()
            raise SessionStoreError(f"session store {self.address}: dump failed ({exc!r})") from exc
        return int(parts[1]), int(parts[2]), payload[:-2]

    async def adopt(self, log_epoch: int, seq: int, payload: bytes) -> None:
        """Install another node's dump (only if it is at least as up to date)."""
        header = b"hk_adopt %d %d %d\r\n" % (log_epoch, seq, len(payload))
        await self._roundtrip(header + payload + b"\r\n")

    # --- plumbing ----------------------------------------------------------------------------

    async def command(self, line: bytes) -> bytes:
        """Send one command line; return its one-line reply (without CRLF)."""
        return await self._roundtrip(line + b"\r\n")

    async def _store(
        self, cmd: bytes, key: bytes, data: bytes, exptime: int, flags: int, extra: bytes
    ) -> bytes:
        header = b"%s %s %d %d %d%s\r\n" % (cmd, key, flags, exptime, len(data), extra)
        return await self._roundtrip(header + data + b"\r\n")

    async def _roundtrip(self, payload: bytes) -> bytes:
        reader, writer = self._streams()
        try:
            async with asyncio.timeout(self.timeout):
                writer.write(payload)
                line = await reader.readuntil(b"\n")
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            await self.close()
            raise SessionStoreError(
                f"session store {self.address} did not answer ({exc!r}); the outcome of the "
                "request is unknown: read the key again"
            ) from exc
        return self._checked(line)

    async def _retrieve(self, payload: bytes) -> dict[bytes, Value]:
        reader, writer = self._streams()
        values: dict[bytes, Value] = {}
        try:
            async with asyncio.timeout(self.timeout):
                writer.write(payload)
                while True:
                    line = self._checked(await reader.readuntil(b"\n"))
                    if line == b"END":
                        return values
                    parts = line.split(b" ")
                    if parts[0] != b"VALUE" or len(parts) not in (4, 5):
                        raise SessionStoreError(f"session store {self.address}: bad reply {line!r}")
                    data = await reader.readexactly(int(parts[3]) + 2)
                    cas = int(parts[4]) if len(parts) == 5 else None
                    values[parts[1]] = Value(data[:-2], int(parts[2]), cas)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            await self.close()
            raise SessionStoreError(
                f"session store {self.address} did not answer ({exc!r}); retry the read"
            ) from exc

    def _streams(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            raise SessionStoreError(
                f"session store {self.address}: not connected (call connect() first)"
            )
        return self._reader, self._writer

    def _checked(self, line: bytes) -> bytes:
        line = line.rstrip(b"\r\n")
        if line.startswith(ERROR_PREFIXES):
            raise SessionStoreError(f"session store {self.address} answered {line.decode()!r}")
        return line

    def _position(self, line: bytes) -> Position:
        try:
            return Position.parse(line)
        except ValueError as exc:
            raise SessionStoreError(f"session store {self.address}: {exc}") from exc
