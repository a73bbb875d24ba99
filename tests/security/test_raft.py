"""Hostile peers against a real embedded-Raft member group (one process per member).

Each test attacks the members' Raft ports on loopback, then asserts that the attack failed,
that every member process is still alive and that a normal write still commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import select
import socket
import struct
import sys
import threading
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hakeeper.config.secret_file import read_secret_file, write_secret_file
from hakeeper.coord import peer_auth
from hakeeper.coord.raft import RaftCoordinator
from hakeeper.coord.raft_connection import HANDSHAKE_DEADLINE
from hakeeper.coord.raft_transport import MAX_PENDING
from hakeeper.lab.processes import ManagedProcess, free_port
from hakeeper.lab.raft_cluster import RaftCluster
from hakeeper.model.wire_version import SUPPORTED, Format, VersionRange

pytestmark = pytest.mark.slow

WRONG_SECRET = b"not-the-cluster-secret-0123456789abcdef"


class _Marker:
    """Unpickling this creates a file: proof that a member ran attacker-chosen code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


@dataclass
class Group:
    cluster: RaftCluster
    client: RaftCoordinator

    def ports(self) -> list[tuple[str, int]]:
        return [(h, int(p)) for h, p in (e.rsplit(":", 1) for e in self.cluster.endpoints)]

    async def assert_healthy(self) -> None:
        for name in self.cluster.names:
            assert self.cluster.running(name), f"member {name} died"
        stamp = str(time.monotonic()).encode()
        await asyncio.wait_for(self.client.put("/security/probe", stamp), 30)
        found = await asyncio.wait_for(self.client.get("/security/probe"), 30)
        assert found is not None
        assert found.value == stamp


@pytest.fixture
async def group(tmp_path: Path) -> AsyncIterator[Group]:
    cluster = RaftCluster(3, base_dir=tmp_path / "raft")
    try:
        await cluster.start()
        yield Group(cluster, await cluster.client())
    finally:
        await cluster.close()


def _dial(address: tuple[str, int], timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(address, timeout=timeout)


async def _dial_when_listening(address: tuple[str, int], within: float = 30.0) -> socket.socket:
    """Dial a member that may still be starting (the group has quorum with two of three)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return _dial(address)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def _closed_by_peer(sock: socket.socket, within: float) -> bool:
    """True once the other side closed (EOF or reset) within ``within`` seconds."""
    sock.settimeout(within)
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            if not sock.recv(4096):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return False


def _handshake(sock: socket.socket, secret: bytes) -> tuple[bytes, peer_auth.SessionKeys]:
    """Speak the peer handshake as an initiator proving ``secret``; (reply, keys)."""
    mine = peer_auth.new_nonce()
    sock.sendall(peer_auth.hello(mine))
    reply = b""
    while len(reply) < peer_auth.REPLY_BYTES:
        chunk = sock.recv(peer_auth.REPLY_BYTES - len(reply))
        assert chunk, "the member closed before replying to a well-formed hello"
        reply += chunk
    theirs = reply[len(peer_auth.MAGIC) : len(peer_auth.MAGIC) + peer_auth.NONCE_BYTES]
    sock.sendall(peer_auth.finish(secret, mine, theirs))
    return reply, peer_auth.session_keys(secret, secret, mine, theirs)


@contextlib.contextmanager
def _many(address_list: list[tuple[str, int]], count: int) -> Iterator[list[socket.socket]]:
    """``count`` idle TCP connections spread over the addresses; all closed afterwards."""
    socks: list[socket.socket] = []
    try:
        for i in range(count):
            with contextlib.suppress(OSError):  # a refused dial is the member protecting itself
                socks.append(_dial(address_list[i % len(address_list)], timeout=2.0))
        yield socks
    finally:
        for sock in socks:
            sock.close()


async def test_a_pickle_sent_raw_to_the_raft_port_never_runs(group: Group, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Marker(marker))
    pysyncobj_frame = struct.pack("i", len(zlib.compress(payload))) + zlib.compress(payload)
    for address in group.ports():
        for attempt in (payload, pysyncobj_frame, peer_auth.MAGIC + payload):
            with await _dial_when_listening(address) as sock:
                sock.sendall(attempt)
                assert _closed_by_peer(sock, within=HANDSHAKE_DEADLINE + 10)
    await asyncio.sleep(1.0)
    assert not marker.exists(), "a member unpickled bytes from an unauthenticated peer"
    await group.assert_healthy()


async def test_a_forged_peer_with_a_wrong_secret_is_refused(group: Group, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    accepted = read_secret_file(group.cluster.secret_file).accepted
    for address in group.ports():
        with await _dial_when_listening(address) as sock:
            reply, keys = _handshake(sock, WRONG_SECRET)
            # The member proved a secret the forger cannot check against its own...
            with pytest.raises(peer_auth.HandshakeFailed):
                peer_auth.check_reply(reply, (WRONG_SECRET,), b"\x00" * peer_auth.NONCE_BYTES)
            # ...and, told the forger's "address", would apply what follows if it trusted it.
            sealer = peer_auth.FrameSealer(keys.initiator_to_acceptor)
            with contextlib.suppress(OSError):
                sock.sendall(sealer.seal(group.cluster.endpoints[0]))
                sock.sendall(sealer.seal(_Marker(marker)))
            assert _closed_by_peer(sock, within=HANDSHAKE_DEADLINE + 10)
    assert accepted  # the real secret was never needed to run the attack
    assert not marker.exists()
    await group.assert_healthy()


async def test_an_oversized_frame_header_is_refused_before_it_is_buffered(group: Group) -> None:
    # An insider's bug or a stolen secret: even an authenticated peer cannot make a member
    # buffer more than one bounded frame.
    secret = read_secret_file(group.cluster.secret_file).current
    for address in group.ports():
        with await _dial_when_listening(address) as sock:
            _handshake(sock, secret)
            sock.sendall(struct.pack(">I", 0x7FFFFFFF) + b"\x00" * 65536)
            assert _closed_by_peer(sock, within=10)
    await group.assert_healthy()


async def test_an_oversized_header_from_a_stranger_is_refused(group: Group) -> None:
    for address in group.ports():
        with await _dial_when_listening(address) as sock:
            sock.sendall(struct.pack("i", 0x7FFFFFFF) + b"\x00" * 65536)
            assert _closed_by_peer(sock, within=HANDSHAKE_DEADLINE + 10)
    await group.assert_healthy()


async def test_a_silent_connection_is_closed_after_the_handshake_deadline(group: Group) -> None:
    address = group.ports()[0]
    with await _dial_when_listening(address) as sock:
        started = time.monotonic()
        assert _closed_by_peer(sock, within=HANDSHAKE_DEADLINE + 10)
        assert time.monotonic() - started >= HANDSHAKE_DEADLINE * 0.5
    await group.assert_healthy()


async def test_a_thousand_idle_connections_then_a_leader_kill_elects_and_writes(
    group: Group,
) -> None:
    cluster = group.cluster
    with _many(group.ports(), 1000) as socks:
        assert len(socks) >= 900, "the test could not open its idle connections"
        leader = await cluster.leader()
        cluster.kill(leader)
        # A normal election among the two others, and a write through the new leader, while
        # the idle connections are held.
        new_leader = await asyncio.wait_for(cluster.leader(), 60)
        assert new_leader != leader
        for name in cluster.names:
            assert name == leader or cluster.running(name)
        stamp = b"after-the-flood"
        await asyncio.wait_for(group.client.put("/security/flood", stamp), 30)
        # Every idle connection is closed by its member (the handshake deadline, or the cap
        # at accept): none is held for long. Generous overall deadline for a loaded machine.
        deadline = time.monotonic() + HANDSHAKE_DEADLINE + 30
        still_open = [
            s for s in socks if not _closed_by_peer(s, max(0.05, deadline - time.monotonic()))
        ]
        assert not still_open, f"{len(still_open)} idle connections still held"
    await cluster.restart(leader)
    await group.assert_healthy()


async def test_a_member_keeps_serving_after_accept_fails_with_emfile(tmp_path: Path) -> None:
    # One member whose descriptor limit the flood exhausts: accept() fails with EMFILE.
    # PySyncObj unbound its listener for good then; a guarded member pauses and serves again.
    secret = tmp_path / "secret"
    write_secret_file(secret)
    address = f"127.0.0.1:{free_port()}"
    argv = [
        "prlimit", "--nofile=48:48", "--",
        sys.executable, "-m", "hakeeper", "coord", "member",
        "--address", address, "--peers", address,
        "--data-dir", str(tmp_path / "m1"), "--secret-file", str(secret),
    ]  # fmt: skip
    member = ManagedProcess("m1", argv, tmp_path / "m1.log")
    member.start()
    try:
        client = await RaftCoordinator.open([address], secret_file=secret, ready_timeout=30)
        await client.close()
        host, port = address.rsplit(":", 1)
        with _many([(host, int(port))], 120):
            await asyncio.sleep(1.0)
        assert "raft_accept_failed" in member.log_path.read_text(), member.log_tail()
        assert member.running
        client = await RaftCoordinator.open([address], secret_file=secret, ready_timeout=30)
        try:
            await asyncio.wait_for(client.put("/security/emfile", b"ok"), 30)
            assert (await client.get("/security/emfile")) is not None
        finally:
            await client.close()
    finally:
        member.kill()


def _flood(targets: list[tuple[str, int]], source: str, stop: threading.Event) -> int:
    """Keep ``MAX_PENDING`` + 16 silent connections from ``source`` open to each target,
    replacing every one a member closes, until ``stop`` (bounded: 30 s, 20,000 dials).
    Returns how many dials were made."""
    held: dict[int, tuple[socket.socket, tuple[str, int]]] = {}
    poller = select.poll()
    dials = 0
    deadline = time.monotonic() + 30
    try:
        while not stop.is_set() and time.monotonic() < deadline and dials < 20_000:
            for target in targets:
                missing = MAX_PENDING + 16 - sum(1 for _, t in held.values() if t == target)
                for _ in range(missing):
                    sock = socket.socket()
                    try:
                        sock.bind((source, 0))
                        sock.connect(target)
                    except OSError:
                        sock.close()
                        continue
                    held[sock.fileno()] = (sock, target)
                    poller.register(sock.fileno(), select.POLLIN)
                    dials += 1
            for fd, _event in poller.poll(50):
                poller.unregister(fd)
                held.pop(fd)[0].close()  # closed by the member (or data: neither is ours)
    finally:
        for sock, _target in held.values():
            sock.close()
    return dials


async def test_a_flood_from_elsewhere_does_not_lock_out_a_member_host(
    group: Group, tmp_path: Path
) -> None:
    stop = threading.Event()
    flood = asyncio.create_task(asyncio.to_thread(_flood, group.ports(), "127.0.0.77", stop))
    try:
        await asyncio.sleep(1.0)  # every member's handshake cap is full of the flood now
        # A new client on a member's host (127.0.0.1) dials every member and writes.
        client = await RaftCoordinator.open(
            group.cluster.endpoints, secret_file=group.cluster.secret_file, ready_timeout=20
        )
        try:
            await asyncio.wait_for(client.put("/security/during-flood", b"ok"), 20)
        finally:
            await client.close()
    finally:
        stop.set()
        dials = await asyncio.wait_for(flood, 60)
    assert dials > 3 * MAX_PENDING
    logs = "".join((tmp_path / "raft" / f"{n}.log").read_text() for n in group.cluster.names)
    assert "too_many_unauthenticated" in logs  # the cap was reached: the flood was real
    await group.assert_healthy()


async def test_a_stranger_offering_wire_versions_no_member_speaks_is_refused_and_closed(
    group: Group,
) -> None:
    # The refusal names the member's own range (so a real peer can say which side to
    # upgrade) and carries no proof: nothing about the secret is given away.
    far_future = peer_auth.hello(peer_auth.new_nonce(), VersionRange(200, 255))
    for address in group.ports():
        with await _dial_when_listening(address) as sock:
            sock.sendall(far_future)
            answer = sock.recv(peer_auth.REPLY_BYTES, socket.MSG_WAITALL)
            assert answer[:8] == b"HKRAFT\x00\x00"
            speaks = SUPPORTED[Format.RAFT_PEER_WIRE]
            assert answer[8:10] == bytes((speaks.newest, speaks.oldest))
            assert answer[10:] == b"\x00" * (peer_auth.REPLY_BYTES - 10)
            assert _closed_by_peer(sock, within=HANDSHAKE_DEADLINE + 10)
    await group.assert_healthy()
