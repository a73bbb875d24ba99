"""A minimal asyncio RESP2 client for the Redis anchors: one connection, one command at a
time, every call under the caller's timeout. redis-py is not a dependency of hakeeper; this is
the subset a Sentinel-aware writer needs (SET, WAIT, GET, ``SENTINEL ...``, INFO)."""

from __future__ import annotations

import asyncio

Reply = bytes | int | None | list["Reply"]


class RedisError(Exception):
    """An error reply (``-ERR ...``, ``-READONLY ...``, ``-NOREPLICAS ...``)."""


def encode(*parts: bytes | str | int) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


async def read_reply(reader: asyncio.StreamReader) -> Reply:
    line = (await reader.readuntil(b"\r\n"))[:-2]
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RedisError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        return (await reader.readexactly(size + 2))[:-2]
    if kind == b"*":
        count = int(rest)
        if count < 0:
            return None
        return [await read_reply(reader) for _ in range(count)]
    raise RedisError(f"unexpected reply line {line[:80]!r}")


class Resp:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def connect(self) -> None:
        self._streams = await asyncio.open_connection(self.host, self.port)

    async def call(self, *parts: bytes | str | int) -> Reply:
        if self._streams is None:
            await self.connect()
        assert self._streams is not None
        reader, writer = self._streams
        writer.write(encode(*parts))
        await writer.drain()
        return await read_reply(reader)

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


async def call_once(host: str, port: int, *parts: bytes | str | int, timeout: float) -> Reply:
    """One command on a connection of its own."""
    client = Resp(host, port)
    try:
        async with asyncio.timeout(timeout):
            return await client.call(*parts)
    finally:
        client.close()
