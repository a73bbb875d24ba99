"""Client authentication with memcached's -Y authfile and ASCII auth, against real servers."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheClientError

from hakeeper.errors import ConfigError, SessionStoreError
from hakeeper.lab.processes import ManagedProcess, free_port
from hakeeper.sessions.auth import read_authfile
from hakeeper.sessions.client import SessionClient
from hakeeper.sessions.sync_client import SyncClient
from tests.conftest import require_binary
from tests.sessions.servers import start_store, wait_listening

CREDENTIALS = b"alice:wonderland-42\nbob:builder-7\n"
# Each step on its own round trip: the replies memcached 1.6.18 -Y gives them.
STEPS = [
    b"get k\r\n",
    b"version\r\n",
    b"set auth 0 0 3\r\nabc\r\n",
    b"set auth 0 0 14\r\nalice not-this\r\n",
    b"get k\r\n",
    b"set auth 0 0 13\r\nbob builder-7\r\n",
    b"set k 0 0 1\r\nv\r\n",
    b"get k\r\n",
]


def authfile(tmp_path: Path, mode: int = 0o600) -> Path:
    path = tmp_path / "authfile"
    path.write_bytes(CREDENTIALS)
    path.chmod(mode)
    return path


@pytest.fixture
def auth_store(tmp_path: Path) -> Iterator[str]:
    address = f"127.0.0.1:{free_port()}"
    proc = start_store(tmp_path, "store", address, extra=("--authfile", str(authfile(tmp_path))))
    try:
        yield address
    finally:
        proc.kill()


def steps(address: str) -> list[bytes]:
    host, _, port = address.rpartition(":")
    replies = []
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        reader = sock.makefile("rb")
        for step in STEPS:
            sock.sendall(step)
            reply = reader.readline()
            if reply.startswith(b"VALUE"):
                reply += reader.readline() + reader.readline()
            replies.append(reply)
    return replies


def test_authfile_open_to_others_is_refused_with_the_chmod_fix(tmp_path: Path) -> None:
    path = authfile(tmp_path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_authfile(path)


def test_authfile_line_without_a_colon_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "authfile"
    path.write_bytes(b"alice\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="user:password"):
        read_authfile(path)


def test_password_must_match_whole_not_as_a_prefix(tmp_path: Path) -> None:
    auth = read_authfile(authfile(tmp_path))
    assert auth.check(b"bob builder-7") is True
    assert auth.check(b"bob builder-7 extra") is False
    assert auth.check(b"bob builder-") is False
    assert auth.check(b"bob") is None


@pytest.mark.slow
def test_ascii_auth_replies_as_memcached_does(auth_store: str, tmp_path: Path) -> None:
    require_binary("memcached")
    if os.geteuid() != 0:
        pytest.skip("memcached drops to user nobody, who must own its authfile: run as root")
    # memcached reads its authfile as nobody: a directory nobody may enter (pytest's is 0700).
    scratch = Path(tempfile.mkdtemp(prefix="hk-memcached-auth-"))
    scratch.chmod(0o711)
    reference_file = scratch / "authfile"
    shutil.copy(authfile(tmp_path), reference_file)
    reference_file.chmod(0o600)
    os.chown(reference_file, pwd.getpwnam("nobody").pw_uid, -1)
    port = free_port()
    argv = ["memcached", "-p", str(port), "-l", "127.0.0.1", "-U", "0", "-t", "1"]
    argv += ["-u", "nobody", "-Y", str(reference_file)]
    proc = ManagedProcess("memcached-auth", argv, tmp_path / "memcached-auth.log")
    proc.start()
    try:
        wait_listening("127.0.0.1", port, proc)
        expected = steps(f"127.0.0.1:{port}")
    finally:
        proc.kill()
        shutil.rmtree(scratch)
    assert expected[0] == b"CLIENT_ERROR unauthenticated\r\n"
    assert steps(auth_store) == expected


@pytest.mark.slow
def test_pymemcache_authenticates_with_a_first_set(auth_store: str) -> None:
    host, _, port = auth_store.rpartition(":")
    client = Client((host, int(port)), timeout=5, connect_timeout=5)
    try:
        with pytest.raises(MemcacheClientError):
            client.get("k")
        client.close()
        # memcached's ASCII auth: the first command, a set of "user password".
        assert client.set("auth", "alice wonderland-42", noreply=False)
        assert client.set("k", "v", noreply=False)
        assert client.get("k") == b"v"
    finally:
        client.close()


@pytest.mark.slow
async def test_store_clients_authenticate_with_credentials(auth_store: str) -> None:
    with pytest.raises(SessionStoreError, match="unauthenticated"):
        await asyncio.to_thread(SyncClient(auth_store).get, b"k")
    sync = SyncClient(auth_store, credentials=b"bob builder-7")
    assert await asyncio.to_thread(sync.set, b"k", b"v", 0) == b"STORED"
    async with SessionClient(auth_store, credentials=b"alice wonderland-42") as client:
        found = await client.get(b"k")
    assert found is not None
    assert found.data == b"v"
    with pytest.raises(SessionStoreError, match="authentication failure"):
        async with SessionClient(auth_store, credentials=b"alice wrong") as client:
            pass
