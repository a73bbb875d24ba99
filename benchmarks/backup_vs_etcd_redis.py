"""Backup and restore time of the session store against `etcdctl snapshot` and `redis-cli --rdb`.

For each key count (10k and 100k; 1M with ``--million``), the same keys (``session:%08d``)
and values (100 hexadecimal bytes each, different per key) are loaded into three systems
started here on loopback, and each is backed up to a file and restored from it:

- ``hakeeper``: a 3-node session store (primary + 2 replicas, every write on a majority).
  Backup = a consistent snapshot of the primary (`sessions.snapshot_transfer`) written
  through `hakeeper.backup`'s writer, AES-256-GCM encrypted with SHA-256 per object, to a
  directory store (fsynced). Restore = the backup reader (decrypt, check the checksum) fed
  into a fresh, running, empty 3-node store (`reseed`), until a majority of its nodes hold
  the data.
- ``etcd`` 3.4 (one member): ``etcdctl snapshot save``; restore = ``etcdctl snapshot
  restore`` into a new data directory + the new etcd started until it answers a read.
- ``redis`` 7 (one server, no persistence, ``repl-diskless-sync-delay 0``): ``redis-cli
  --rdb``; restore = a new
  redis-server started on the dump until ``DBSIZE`` answers the key count (it loads the
  RDB at start).

etcd and Redis write their files unencrypted and without a manifest; hakeeper's restore
also reaches two replicas. Every process is started here and stopped by its PID at the end.
The machine is shared and noisy: compare the ratios of one run, not absolute times.

    .venv/bin/python benchmarks/backup_vs_etcd_redis.py [--million] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from backup_anchors import (
    CALL_TIMEOUT,
    LOAD_BATCH,
    Row,
    key,
    run_etcd,
    run_redis,
    value,
)
from children import START_TIMEOUT, Children, children, free_port, wait_port

from hakeeper.backup.dir_store import DirectoryStore
from hakeeper.backup.keys import write_key_file
from hakeeper.backup.manifest import ClusterIdentity, Trust
from hakeeper.backup.reader import open_backup
from hakeeper.backup.writer import write_backup
from hakeeper.sessions.client import SessionClient
from hakeeper.sessions.snapshot_transfer import reseed, take_snapshot

SIZES = (10_000, 100_000)
MILLION = 1_000_000
SOURCE_HOSTS = ("127.0.0.201", "127.0.0.202", "127.0.0.203")
FRESH_HOSTS = ("127.0.0.204", "127.0.0.205", "127.0.0.206")
OBJECT = "sessions/web"


# --- hakeeper ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Store:
    clients: tuple[str, ...]
    peers: tuple[str, ...]
    secret: Path


def start_store(procs: Children, name: str, hosts: Sequence[str], secret: Path) -> Store:
    port, peer_port = free_port(hosts[0]), free_port(hosts[0])
    clients = tuple(f"{h}:{port}" for h in hosts)
    peers = tuple(f"{h}:{peer_port}" for h in hosts)
    for index, (client, peer) in enumerate(zip(clients, peers, strict=True)):
        argv = [sys.executable, "-m", "hakeeper.cli.sessions", "serve", "--listen", client]
        argv += ["--peer-listen", peer, "--peers", ",".join(peers), "--secret-file", str(secret)]
        argv += ["--epoch", "1", "--memory", "4g", "--write-timeout", str(CALL_TIMEOUT)]
        argv += ["--log-level", "WARNING"]
        if index == 0:
            argv.append("--primary")
        proc = procs.start(f"{name}-{index}", argv)
        wait_port(hosts[index], port, proc)
    return Store(clients, peers, secret)


def peer_client(store: Store, address: str) -> SessionClient:
    return SessionClient(address, timeout=CALL_TIMEOUT, secret_file=store.secret)


def control(store: Store, index: int = 0) -> SessionClient:
    return peer_client(store, store.peers[index])


async def wait_replicated(store: Store) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    for index in range(len(store.peers)):
        while True:
            async with control(store, index) as client:
                if (await client.position()).log_epoch == 1:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{store.peers[index]} never followed the primary")
            await asyncio.sleep(0.1)


async def load_store(address: str, count: int) -> None:
    """Pipelined sets, LOAD_BATCH at a time, each batch's replies read before the next."""
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port), limit=1 << 20)
    try:
        for start in range(0, count, LOAD_BATCH):
            stop = min(start + LOAD_BATCH, count)
            writer.write(
                b"".join(
                    b"set %s 0 0 100\r\n%s\r\n" % (key(i), value(i)) for i in range(start, stop)
                )
            )
            for _ in range(start, stop):
                line = await reader.readline()
                if line != b"STORED\r\n":
                    raise RuntimeError(f"hakeeper store answered {line!r}")
    finally:
        writer.close()


async def curr_items(address: str) -> int:
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"stats\r\n")
        while (line := await reader.readline()) != b"END\r\n":
            if line.startswith(b"STAT curr_items "):
                found = int(line.split()[2])
        return found
    finally:
        writer.close()


class OneObject:
    """The backup's object source: one session store's snapshot."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks

    def object_names(self) -> Sequence[str]:
        return (OBJECT,)

    def chunks(self, name: str) -> AsyncIterator[bytes]:
        return self._chunks


async def run_hakeeper(count: int, workdir: Path) -> Row:
    secret = workdir / "secret"
    if not secret.exists():
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, secrets.token_urlsafe(32).encode() + b"\n")
        os.close(fd)
    key_file = workdir / f"backup-key-{count}"
    keyring = write_key_file(key_file)
    backups = DirectoryStore(workdir / f"backups-{count}")
    with children(workdir) as procs:
        source = start_store(procs, f"source-{count}", SOURCE_HOSTS, secret)
        fresh = start_store(procs, f"fresh-{count}", FRESH_HOSTS, secret)
        await wait_replicated(source)
        await wait_replicated(fresh)
        started = time.monotonic()
        await load_store(source.clients[0], count)
        loaded = time.monotonic() - started

        started = time.monotonic()
        snapshot = await take_snapshot(control(source))
        summary = await write_backup(
            backups,
            OneObject(snapshot.chunks()),
            cluster=ClusterIdentity(name="bench", cluster_id="bench"),
            coord_revision=0,
            epochs={OBJECT: snapshot.epoch},
            keyring=keyring,
        )
        backed_up = time.monotonic() - started

        started = time.monotonic()
        reader = await open_backup(backups, summary.backup_id, Trust(keyring=keyring))
        epoch = dict((e.name, e.epoch) for e in reader.manifest.epochs)[OBJECT]
        result = await reseed(
            fresh.peers[0],
            epoch,
            reader.read_object(OBJECT),
            nodes=fresh.peers,
            client_for=lambda address: peer_client(fresh, address),
            timeout=CALL_TIMEOUT,
        )
        restored = time.monotonic() - started
        if result.keys != count or await curr_items(fresh.clients[0]) != count:
            raise RuntimeError(f"hakeeper restore holds {result.keys} keys, not {count}")
        async with SessionClient(fresh.clients[1], timeout=CALL_TIMEOUT) as client:
            probe = await client.get(key(count // 2))
        if probe is None or probe.data != value(count // 2):
            raise RuntimeError("hakeeper restore: a key read back differs")
    return Row(
        "hakeeper",
        count,
        loaded,
        backed_up,
        restored,
        summary.stored_bytes,
        "3 nodes; encrypted; restore acknowledged by a majority",
    )


# --- report -----------------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    lines = [
        f"{'system':<9} {'keys':>9} {'load s':>8} {'backup s':>9} {'restore s':>10} "
        f"{'file MB':>8}  detail"
    ]
    for r in rows:
        lines.append(
            f"{r.system:<9} {r.keys:>9} {r.load_s:>8.2f} {r.backup_s:>9.3f} {r.restore_s:>10.3f} "
            f"{r.backup_bytes / 1e6:>8.1f}  {r.detail}"
        )
    lines.append("")
    lines.append("ratios (hakeeper time / anchor time; lower is better):")
    for count in sorted({r.keys for r in rows}):
        mine = next(r for r in rows if r.system == "hakeeper" and r.keys == count)
        for anchor in ("etcd", "redis"):
            other = next(r for r in rows if r.system == anchor and r.keys == count)
            lines.append(
                f"  {count:>9} keys vs {anchor:<5}: backup {mine.backup_s / other.backup_s:6.2f}x"
                f"  restore {mine.restore_s / other.restore_s:6.2f}x"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--million", action="store_true", help="Also 1M keys (several minutes and ~5 GB)."
    )
    parser.add_argument("--json", action="store_true", help="Machine-readable rows.")
    args = parser.parse_args()
    for tool in ("etcd", "etcdctl", "redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            print(f"{tool} not found: run `make bench-deps` (as root)", file=sys.stderr)
            return 2
    sizes = (*SIZES, MILLION) if args.million else SIZES
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="hk-backup-bench-") as tmp:
        workdir = Path(tmp)
        for count in sizes:
            rows.append(asyncio.run(run_hakeeper(count, workdir)))
            rows.append(run_etcd(count, workdir))
            rows.append(run_redis(count, workdir))
            if not args.json:
                print(f"{count} keys done", file=sys.stderr)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=1))
    else:
        print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
