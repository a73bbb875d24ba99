"""Chaos: concurrent set/cas/get while the primary is killed (-9) and frozen (SIGSTOP).

Faults in turn: kill -9 the primary; SIGSTOP it; freeze both replicas so the primary is
alone for a while (it must acknowledge nothing), then kill it.

Three real store processes; clients connect to any node (replicas forward to the primary).
The test is the cluster controller: after each fault it fences the survivors with a new
epoch and promotes the most up-to-date one; a killed node restarts empty, a frozen one is
thawed and must step down. Afterwards every per-key history must be linearizable and every
acknowledged write-once key must still be there: zero lost acknowledged writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from dataclasses import dataclass, field

import pytest

from hakeeper.errors import SessionStoreError
from hakeeper.lab.linearizability import Kind, Op, Result, check
from hakeeper.sessions.client import SessionClient
from tests.sessions.cluster import StoreCluster

pytestmark = pytest.mark.slow

# Eight registers: fewer operations of unknown outcome pile up on any one key, which keeps
# the linearizability search small (it grows exponentially with them) without weakening it.
KEYS = [f"r{i}".encode() for i in range(8)]
CLIENTS = 6
FAULTS = 6
FAULT_EVERY = 2.0
MAX_OPS_PER_CLIENT = 3000
CLIENT_TIMEOUT = 1.5


@dataclass
class Recorder:
    history: dict[bytes, list[Op]] = field(default_factory=lambda: {k: [] for k in KEYS})
    acked_once: dict[bytes, bytes] = field(default_factory=dict)
    unknown_once: int = 0
    ops: int = 0
    failures: int = 0


async def client_loop(
    index: int, cluster: StoreCluster, recorder: Recorder, stop: asyncio.Event
) -> None:
    rng = random.Random(index)
    counter = itertools.count()
    client: SessionClient | None = None
    for _ in range(MAX_OPS_PER_CLIENT):
        if stop.is_set():
            break
        if client is None:
            client = SessionClient(rng.choice(cluster.addresses), timeout=CLIENT_TIMEOUT)
            try:
                await client.connect()
            except SessionStoreError:
                client = None
                await asyncio.sleep(0.05)
                continue
        key = rng.choice(KEYS)
        value = f"c{index}-{next(counter)}"
        choice = rng.random()
        recorder.ops += 1
        try:
            if choice < 0.15:
                await write_once(client, recorder, f"once-{value}".encode())
            elif choice < 0.5:
                await do_set(client, recorder, key, value)
            elif choice < 0.75:
                await do_cas(client, recorder, key, value)
            else:
                await do_get(client, recorder, key)
        except SessionStoreError:
            recorder.failures += 1
            await client.close()
            client = None
    if client is not None:
        await client.close()


async def write_once(client: SessionClient, recorder: Recorder, key: bytes) -> None:
    try:
        reply = await client.set(key, key)
    except SessionStoreError:
        recorder.unknown_once += 1
        raise
    if reply == b"STORED":
        recorder.acked_once[key] = key


async def do_set(client: SessionClient, recorder: Recorder, key: bytes, value: str) -> None:
    call = time.monotonic()
    try:
        reply = await client.set(key, value.encode())
    except SessionStoreError:
        recorder.history[key].append(Op(Kind.SET, call, call, Result.UNKNOWN, value))
        raise
    result = Result.OK if reply == b"STORED" else Result.UNKNOWN
    recorder.history[key].append(Op(Kind.SET, call, time.monotonic(), result, value))


async def do_get(client: SessionClient, recorder: Recorder, key: bytes) -> str | None:
    call = time.monotonic()
    found = await client.gets(key)
    value = found.data.decode() if found is not None else None
    recorder.history[key].append(Op(Kind.GET, call, time.monotonic(), Result.OK, value))
    return value


async def do_cas(client: SessionClient, recorder: Recorder, key: bytes, value: str) -> None:
    call = time.monotonic()
    found = await client.gets(key)
    seen = found.data.decode() if found is not None else None
    recorder.history[key].append(Op(Kind.GET, call, time.monotonic(), Result.OK, seen))
    if found is None or found.cas is None or seen is None:
        return
    call = time.monotonic()
    try:
        reply = await client.cas(key, value.encode(), found.cas)
    except SessionStoreError:
        recorder.history[key].append(Op(Kind.CAS, call, call, Result.UNKNOWN, value, seen))
        raise
    result = {b"STORED": Result.OK, b"EXISTS": Result.EXISTS, b"NOT_FOUND": Result.NOT_FOUND}
    recorder.history[key].append(
        Op(Kind.CAS, call, time.monotonic(), result.get(reply, Result.UNKNOWN), value, seen)
    )


async def isolated_writes(address: str, recorder: Recorder, seconds: float, round_: int) -> None:
    """Write-once keys straight to an isolated primary: none may be acknowledged.

    Every client connection might sit on a frozen replica during the isolation; this writer
    makes sure the cut-off primary is offered writes. A primary that acknowledged them would
    lose them with its death (only a window of batches reaches the frozen replicas' sockets).
    """
    counter = itertools.count()
    with contextlib.suppress(SessionStoreError, TimeoutError):
        async with asyncio.timeout(seconds):
            async with SessionClient(address, timeout=CLIENT_TIMEOUT) as client:
                while True:
                    await write_once(client, recorder, b"isolated-%d-%d" % (round_, next(counter)))


async def nemesis(cluster: StoreCluster, stop: asyncio.Event, recorder: Recorder) -> list[str]:
    done = []
    for round_ in range(FAULTS):
        await asyncio.sleep(FAULT_EVERY)
        lost = cluster.primary
        assert lost is not None
        fault = ("kill", "freeze", "isolate")[round_ % 3]
        if fault == "isolate":
            # The primary alone keeps taking writes it must not acknowledge, then dies.
            others = [a for a in cluster.addresses if a != lost]
            for address in others:
                cluster.freeze(address)
            await isolated_writes(lost, recorder, 0.5, round_)
            cluster.kill(lost)
            for address in others:
                cluster.thaw(address)
        elif fault == "kill":
            cluster.kill(lost)
        else:
            cluster.freeze(lost)
        await asyncio.sleep(0.3)
        chosen = await cluster.fail_over(lost)
        done.append(f"{fault} {lost} -> {chosen} epoch {cluster.epoch}")
        await asyncio.sleep(0.3)
        if fault == "freeze":
            cluster.thaw(lost)
        else:
            await asyncio.to_thread(cluster.restart, lost)
    await asyncio.sleep(1.0)
    stop.set()
    return done


async def final_reads(cluster: StoreCluster, recorder: Recorder) -> dict[bytes, bytes | None]:
    await cluster.wait_replicated()
    assert cluster.primary is not None
    async with SessionClient(cluster.primary, timeout=5.0) as client:
        for key in KEYS:
            await do_get(client, recorder, key)
        return {
            key: (found.data if (found := await client.get(key)) is not None else None)
            for key in recorder.acked_once
        }


async def test_no_acknowledged_write_lost_and_histories_linearizable(
    store_cluster: StoreCluster,
) -> None:
    await store_cluster.promote_first()
    await store_cluster.wait_replicated()
    recorder = Recorder()
    stop = asyncio.Event()
    async with asyncio.timeout(90):
        async with asyncio.TaskGroup() as tg:
            faults = tg.create_task(nemesis(store_cluster, stop, recorder))
            for index in range(CLIENTS):
                tg.create_task(client_loop(index, store_cluster, recorder, stop))
        once = await final_reads(store_cluster, recorder)
    lost = sorted(key for key, value in once.items() if value != key)
    verdicts = {key: check(ops) for key, ops in recorder.history.items()}
    acked = sum(op.result is Result.OK for ops in recorder.history.values() for op in ops)
    summary = (
        f"faults={faults.result()} ops={recorder.ops} failed_or_unknown={recorder.failures} "
        f"acked_register_ops={acked} acked_once={len(recorder.acked_once)} "
        f"unknown_once={recorder.unknown_once} "
        f"max_search_steps={max(v.explored for v in verdicts.values())}"
    )
    print(summary)
    assert lost == [], f"lost acknowledged writes: {lost[:10]} ({summary})"
    assert all(v.linearizable for v in verdicts.values()), f"{verdicts} ({summary})"
    assert len(recorder.acked_once) > 100, summary
    assert acked > 200, summary
