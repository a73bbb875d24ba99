"""The anchors of `backup_vs_etcd_redis.py`, and what its runs share.

``run_etcd``: etcd 3.4, one member, loaded through its JSON gateway in transactions, backed
up with ``etcdctl snapshot save``, restored with ``etcdctl snapshot restore`` into a new data
directory and a new etcd started on it until it answers. ``run_redis``: Redis 7, one server
without persistence, loaded with ``redis-cli --pipe``, backed up with ``redis-cli --rdb``,
restored by a new redis-server started on the dump until ``DBSIZE`` answers the key count.
Every process is started here and stopped by its PID.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from children import START_TIMEOUT, children, free_port, wait_port

LOAD_BATCH = 10_000
CALL_TIMEOUT = 600.0


@dataclass(frozen=True)
class Row:
    system: str
    keys: int
    load_s: float
    backup_s: float
    restore_s: float
    backup_bytes: int
    detail: str


def key(i: int) -> bytes:
    return b"session:%08d" % i


def value(i: int) -> bytes:
    return hashlib.blake2b(key(i), digest_size=50).hexdigest().encode()


# --- etcd -------------------------------------------------------------------------------------


def etcd_argv(name: str, data_dir: Path, client_port: int, peer_port: int) -> list[str]:
    client = f"http://127.0.0.1:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    return [
        *("etcd", "--name", name, "--data-dir", str(data_dir)),
        *("--listen-client-urls", client, "--advertise-client-urls", client),
        *("--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer),
        *("--initial-cluster", f"{name}={peer}", "--max-txn-ops", "10000"),
        *("--max-request-bytes", str(32 << 20), "--quota-backend-bytes", str(8 << 30)),
        *("--log-level", "warn", "--logger", "zap"),
    ]


def etcd_post(port: int, path: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=CALL_TIMEOUT) as response:
        answer: dict[str, object] = json.loads(response.read())
    return answer


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def etcd_count(port: int) -> int:
    answer = etcd_post(
        port, "/v3/kv/range", {"key": b64(b"\0"), "range_end": b64(b"\0"), "count_only": True}
    )
    return int(str(answer.get("count", 0)))


def wait_etcd(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"etcd exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            etcd_count(port)
            return
        time.sleep(0.02)
    raise RuntimeError("etcd did not answer")


def run_etcd(count: int, workdir: Path) -> Row:
    env = {**os.environ, "ETCDCTL_API": "3"}
    with children(workdir) as procs:
        client_port, peer_port = free_port("127.0.0.1"), free_port("127.0.0.1")
        data = workdir / f"etcd-{count}"
        proc = procs.start(f"etcd-{count}", etcd_argv("src", data, client_port, peer_port))
        wait_etcd(client_port, proc)
        started = time.monotonic()
        for start in range(0, count, LOAD_BATCH):
            puts = [
                {"requestPut": {"key": b64(key(i)), "value": b64(value(i))}}
                for i in range(start, min(start + LOAD_BATCH, count))
            ]
            etcd_post(client_port, "/v3/kv/txn", {"success": puts})
        loaded = time.monotonic() - started

        snap = workdir / f"etcd-{count}.db"
        started = time.monotonic()
        subprocess.run(
            ["etcdctl", "--endpoints", f"127.0.0.1:{client_port}", "snapshot", "save", str(snap)],
            check=True,
            capture_output=True,
            env=env,
            timeout=CALL_TIMEOUT,
        )
        backed_up = time.monotonic() - started

        new_client, new_peer = free_port("127.0.0.1"), free_port("127.0.0.1")
        restored_dir = workdir / f"etcd-{count}-restored"
        started = time.monotonic()
        subprocess.run(
            [
                *("etcdctl", "snapshot", "restore", str(snap), "--data-dir", str(restored_dir)),
                *("--name", "dst", "--initial-cluster", f"dst=http://127.0.0.1:{new_peer}"),
                *("--initial-advertise-peer-urls", f"http://127.0.0.1:{new_peer}"),
            ],
            check=True,
            capture_output=True,
            env=env,
            timeout=CALL_TIMEOUT,
        )
        restore_cmd = time.monotonic() - started
        proc = procs.start(
            f"etcd-{count}-restored", etcd_argv("dst", restored_dir, new_client, new_peer)
        )
        wait_etcd(new_client, proc)
        restored = time.monotonic() - started
        if etcd_count(new_client) != count:
            raise RuntimeError("etcd restore does not hold every key")
    return Row(
        "etcd",
        count,
        loaded,
        backed_up,
        restored,
        snap.stat().st_size,
        f"1 member; restore = snapshot restore {restore_cmd:.2f}s + start until it answers",
    )


# --- redis ------------------------------------------------------------------------------------


def resp(*parts: bytes) -> bytes:
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def redis_cli(port: int, *args: str) -> str:
    done = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
        check=True,
        capture_output=True,
        timeout=CALL_TIMEOUT,
    )
    return done.stdout.decode().strip()


def redis_argv(port: int, directory: Path, dbfile: str) -> list[str]:
    return [
        *("redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", ""),
        *("--appendonly", "no", "--dir", str(directory), "--dbfilename", dbfile),
        # redis-cli --rdb is a replica's full sync: without this, Redis 7 waits 5 s for
        # more replicas before a diskless sync starts.
        *("--repl-diskless-sync-delay", "0"),
    ]


def run_redis(count: int, workdir: Path) -> Row:
    with children(workdir) as procs:
        port = free_port("127.0.0.1")
        directory = workdir / f"redis-{count}"
        directory.mkdir()
        proc = procs.start(f"redis-{count}", redis_argv(port, directory, "none.rdb"))
        wait_port("127.0.0.1", port, proc)
        started = time.monotonic()
        payload = b"".join(resp(b"SET", key(i), value(i)) for i in range(count))
        subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(port), "--pipe"],
            input=payload,
            check=True,
            capture_output=True,
            timeout=CALL_TIMEOUT,
        )
        loaded = time.monotonic() - started

        dump = workdir / f"redis-{count}.rdb"
        started = time.monotonic()
        redis_cli(port, "--rdb", str(dump))
        backed_up = time.monotonic() - started

        restored_dir = workdir / f"redis-{count}-restored"
        restored_dir.mkdir()
        shutil.copyfile(dump, restored_dir / "dump.rdb")
        new_port = free_port("127.0.0.1")
        started = time.monotonic()
        procs.start(f"redis-{count}-restored", redis_argv(new_port, restored_dir, "dump.rdb"))
        deadline = started + START_TIMEOUT
        while True:
            with contextlib.suppress(subprocess.CalledProcessError):
                if redis_cli(new_port, "dbsize") == str(count):
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("redis restore never held every key")
            time.sleep(0.02)
        restored = time.monotonic() - started
    return Row(
        "redis",
        count,
        loaded,
        backed_up,
        restored,
        dump.stat().st_size,
        "1 server; restore = start on the dump until DBSIZE answers",
    )
