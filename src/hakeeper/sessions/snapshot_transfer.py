"""Take a session store's snapshot from its primary, and seed a fresh store with one.

Both speak to a node's peer port (the cluster secret proven first, TLS when configured),
through `client.SessionClient`:

- `find_primary` asks every node its position and picks the primary of the highest epoch
  (a deposed primary that has not heard of its successor cannot commit, so it would never
  hand out a snapshot: it is not asked).
- `take_snapshot` freezes the primary's store (``hk_snapshot``: answered once the
  snapshot's seq is committed, so every write acknowledged before the request is in it and
  nothing written after the freeze is) and returns a `StoreSnapshotStream` whose `chunks`
  read it in bounded pieces (``hk_snapchunk``) on the same connection.
- `reseed` streams a snapshot's bytes into a store's primary (``hk_seed_begin``, pieces of
  ``hk_seed``, ``hk_seed_end``): the primary swaps its contents only when the whole snapshot
  arrived and its key count matched, at one new position (epoch, seq) that every replica
  then copies whole; `reseed` returns once a majority of the nodes hold that position.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from hakeeper.errors import SessionStoreError
from hakeeper.sessions.client import SessionClient
from hakeeper.sessions.client_codec import BusyReply
from hakeeper.sessions.position import Position, Role
from hakeeper.sessions.snapshot import (
    DEFAULT_CHUNK,
    HEADER_MAX,
    MAX_CHUNK,
    SnapshotFormatError,
    SnapshotHeader,
)

# What a chunk may exceed its requested size by: its last entry, up to memcached's largest
# item (-I 1024m); the node sending it proved the cluster secret.
CHUNK_SLACK = 1 << 30
FIND_RETRY = 0.2
BUSY_RETRY = 0.5

ClientFactory = Callable[[str], SessionClient]


@dataclass(frozen=True, slots=True)
class SeedResult:
    """A reseeded store: the epoch and seq every node copies it at, and its key count."""

    epoch: int
    seq: int
    keys: int


class StoreSnapshotStream:
    """One store's snapshot at one (epoch, seq): its header line, then its entries' chunks.

    It holds the connection the snapshot was opened on; `chunks` reads it to the end and
    closes it (so does `close`, for a snapshot not read).
    """

    def __init__(
        self, client: SessionClient, token: int, header: SnapshotHeader, chunk_bytes: int
    ) -> None:
        self._client = client
        self._token = token
        self._header = header
        self._chunk_bytes = chunk_bytes

    @property
    def epoch(self) -> int:
        return self._header.epoch

    @property
    def seq(self) -> int:
        return self._header.seq

    @property
    def keys(self) -> int:
        return self._header.keys

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            yield self._header.encode()
            more = True
            while more:
                chunk, more = await self._client.snapshot_chunk(
                    self._token, self._chunk_bytes, self._chunk_bytes + CHUNK_SLACK
                )
                if chunk:
                    yield chunk
        finally:
            await self._client.close()

    async def close(self) -> None:
        await self._client.close()


async def find_primary(addresses: Sequence[str], client_for: ClientFactory, timeout: float) -> str:
    """The peer address of the primary of the highest epoch, waiting up to ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        positions: dict[str, Position] = {}
        for address in addresses:
            try:
                async with client_for(address) as client:
                    positions[address] = await client.position()
            except SessionStoreError:
                continue
        primaries = {a: p for a, p in positions.items() if p.role is Role.PRIMARY}
        if primaries:
            return max(primaries, key=lambda a: primaries[a].log_epoch)
        if asyncio.get_running_loop().time() > deadline:
            seen = ", ".join(f"{a}={p.role.value}" for a, p in positions.items()) or "none"
            raise SessionStoreError(
                f"no primary among the session store's nodes {', '.join(addresses)} within "
                f"{timeout:g}s (answered: {seen}); check `hakeeper status` for the store's "
                "clone and promote one"
            )
        await asyncio.sleep(FIND_RETRY)


async def take_snapshot(
    client: SessionClient, chunk_bytes: int = DEFAULT_CHUNK, *, busy_wait: float = 0.0
) -> StoreSnapshotStream:
    """Freeze the store on ``client``'s node (its primary; connected here). While another
    snapshot is being read there (a node reads one at a time), ask again for up to
    ``busy_wait`` seconds: a scheduled backup and an operator's can overlap."""
    if not 0 < chunk_bytes <= MAX_CHUNK:
        raise ValueError(f"chunk_bytes must be 1 to {MAX_CHUNK}")
    await client.connect()
    deadline = asyncio.get_running_loop().time() + busy_wait
    try:
        while True:
            try:
                token, epoch, seq, keys = await client.snapshot_open()
                break
            except BusyReply:
                if asyncio.get_running_loop().time() + BUSY_RETRY > deadline:
                    raise
                await asyncio.sleep(BUSY_RETRY)
    except BaseException:
        await client.close()
        raise
    return StoreSnapshotStream(client, token, SnapshotHeader(epoch, seq, keys), chunk_bytes)


async def reseed(
    primary: str,
    source_epoch: int,
    chunks: AsyncIterator[bytes],
    *,
    nodes: Sequence[str],
    client_for: ClientFactory,
    timeout: float,
    chunk_bytes: int = DEFAULT_CHUNK,
) -> SeedResult:
    """Load a snapshot's bytes (as `StoreSnapshotStream.chunks` gave them, cut anywhere) into
    the store whose primary is ``primary`` (one of ``nodes``, every node's address as
    ``client_for`` takes it); return once a majority of ``nodes`` hold it, within ``timeout``
    seconds of the load's end."""
    if not 0 < chunk_bytes <= MAX_CHUNK:
        raise ValueError(f"chunk_bytes must be 1 to {MAX_CHUNK}")
    header, rest = await _read_header(chunks)
    if header.epoch != source_epoch:
        raise SnapshotFormatError(
            f"the snapshot was taken at epoch {header.epoch}, not {source_epoch} as its backup "
            "says: the backup is inconsistent"
        )
    async with client_for(primary) as client:
        token = await client.seed_begin(source_epoch)
        pending = bytearray(rest)
        async for piece in chunks:
            pending += piece
            while len(pending) >= chunk_bytes:
                await client.seed(token, bytes(pending[:chunk_bytes]))
                del pending[:chunk_bytes]
        if pending:
            await client.seed(token, bytes(pending))
        epoch, seq = await client.seed_end(token, header.keys)
    await wait_majority(nodes, client_for, epoch, seq, timeout)
    return SeedResult(epoch, seq, header.keys)


async def wait_majority(
    nodes: Sequence[str], client_for: ClientFactory, epoch: int, seq: int, timeout: float
) -> None:
    """Until a majority of ``nodes`` hold position (``epoch``, at least ``seq``)."""
    needed = len(nodes) // 2 + 1
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        holding = 0
        for address in nodes:
            try:
                async with client_for(address) as client:
                    position = await client.position()
            except SessionStoreError:
                continue
            if position.log_epoch == epoch and position.seq >= seq:
                holding += 1
        if holding >= needed:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise SessionStoreError(
                f"the reseeded store (epoch {epoch}, seq {seq}) reached {holding} of "
                f"{len(nodes)} nodes within {timeout:g}s, not a majority: its primary holds "
                "it; check the nodes' logs and `hakeeper sessions position`, then seed again"
            )
        await asyncio.sleep(FIND_RETRY)


async def _read_header(chunks: AsyncIterator[bytes]) -> tuple[SnapshotHeader, bytes]:
    """The snapshot's header line and the bytes after it in what was read."""
    head = b""
    async for piece in chunks:
        head += piece
        nl = head.find(b"\n")
        if nl >= 0:
            return SnapshotHeader.parse(head[: nl + 1]), head[nl + 1 :]
        if len(head) > HEADER_MAX:
            break
    raise SnapshotFormatError(
        "the snapshot's bytes do not start with a session-store snapshot header line: "
        "it is empty, truncated or not a session-store snapshot"
    )
