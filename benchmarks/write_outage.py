"""A writer with unique values and what it saw around a fault: the write outage and the lost
acknowledged writes. Shared by the failover benchmarks of replicated stores; pure logic plus
one writer loop, so the figures are computed the same way for every store and unit-tested.

The writer sets ``k_i = v_i`` one at a time, each under its own timeout, through a
``write`` callable that does what the store's real client does (follow the primary,
reconnect, ask Sentinel...) and says whether the write was acknowledged. A write that
failed or timed out has an unknown outcome: it is neither acknowledged nor lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

#: what a store adapter does: write ``key = value``; True once the store acknowledged it
#: (durably, as that store promises: a majority for hakeeper, WAIT for Redis).
Write = Callable[[bytes, bytes], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Ack:
    key: bytes
    value: bytes
    at: float  # monotonic time the acknowledgement arrived


@dataclass(slots=True)
class WriterLog:
    acks: list[Ack] = field(default_factory=list)
    failures: int = 0  # writes not acknowledged (error or timeout): outcome unknown

    def acknowledged(self) -> dict[bytes, bytes]:
        return {ack.key: ack.value for ack in self.acks}


def write_outage(ack_times: Sequence[float], fault_at: float) -> float | None:
    """Client-observed outage: the first acknowledgement after the fault minus the last one
    before it (None when either side has none: the run did not measure an outage)."""
    before = [t for t in ack_times if t <= fault_at]
    after = [t for t in ack_times if t > fault_at]
    if not before or not after:
        return None
    return min(after) - max(before)


def lost_writes(acknowledged: Mapping[bytes, bytes], read: Mapping[bytes, bytes | None]) -> int:
    """Acknowledged writes whose value is missing or different when read back afterwards.
    Keys are unique per write, so no later write may legitimately have replaced a value."""
    return sum(1 for key, value in acknowledged.items() if read.get(key) != value)


def key_value(prefix: str, index: int) -> tuple[bytes, bytes]:
    """The i-th write: a key used once and a value that names it (unique per run)."""
    return f"{prefix}:k{index}".encode(), f"{prefix}:v{index}".encode()


async def run_writer(
    write: Write,
    stop: asyncio.Event,
    log: WriterLog,
    *,
    prefix: str,
    timeout: float,
    max_writes: int,
    pause_after_failure: float = 0.01,
) -> None:
    """Write until ``stop`` is set or ``max_writes`` were tried (bounded either way).
    After a failure the writer pauses ``pause_after_failure``, so a refused connection does
    not spin; the next write is a new key (the failed one's outcome stays unknown)."""
    for index in range(max_writes):
        if stop.is_set():
            return
        key, value = key_value(prefix, index)
        try:
            async with asyncio.timeout(timeout):
                acknowledged = await write(key, value)
        except TimeoutError:
            acknowledged = False
        if acknowledged:
            log.acks.append(Ack(key, value, time.monotonic()))
        else:
            log.failures += 1
            await asyncio.sleep(pause_after_failure)
