"""The Raft listener's admission rule, on real sockets and PySyncObj's real poller."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pysyncobj.poller import createPoller

from hakeeper.config.secret_file import SecretFile, write_secret_file
from hakeeper.coord.raft_connection import AuthConnection, PeerGuard
from hakeeper.coord.raft_transport import MAX_PENDING, PEER_RESERVE, GuardedServer

MEMBER_HOST = "127.0.0.1"
STRANGER = "127.0.0.77"
OPTIONS: dict[str, Any] = {
    "timeout": 60.0, "send_buffer": 2**16, "recv_buffer": 2**16, "keepalive": None,
}  # fmt: skip


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock


def tcp_pair(listener: socket.socket) -> tuple[socket.socket, socket.socket]:
    """(the accepted end, the dialling end) of a real loopback TCP connection."""
    theirs = socket.create_connection(listener.getsockname(), timeout=5)
    ours, _ = listener.accept()
    return ours, theirs


@pytest.fixture
def guard(tmp_path: Path) -> PeerGuard:
    write_secret_file(tmp_path / "secret")
    return PeerGuard(SecretFile(tmp_path / "secret"))


@pytest.fixture
def server(guard: PeerGuard) -> GuardedServer:
    member_hosts = frozenset({MEMBER_HOST})
    return GuardedServer(
        createPoller("auto"), "127.0.0.1", 0, guard, lambda conn: None, lambda: member_hosts,
        **OPTIONS,
    )  # fmt: skip


@pytest.fixture
def pending(guard: PeerGuard, listener: socket.socket) -> Iterator[list[AuthConnection]]:
    """Fills the handshake cap; every connection and socket is closed afterwards."""
    made: list[AuthConnection] = []
    ends: list[socket.socket] = []
    poller = createPoller("auto")
    for _ in range(MAX_PENDING):
        ours, theirs = tcp_pair(listener)
        ends.append(theirs)
        made.append(AuthConnection(poller, guard, sock=ours, peer=(STRANGER, 1), **OPTIONS))
    yield made
    for conn in made:
        conn.disconnect()
    for end in ends:
        end.close()


def test_a_full_handshake_cap_refuses_a_stranger(
    server: GuardedServer, pending: list[AuthConnection]
) -> None:
    assert len(pending) == MAX_PENDING
    assert not server._admit(STRANGER)


def test_a_full_handshake_cap_still_admits_a_member_host_up_to_its_reserve(
    server: GuardedServer, pending: list[AuthConnection], guard: PeerGuard, listener: socket.socket
) -> None:
    poller = createPoller("auto")
    extra: list[tuple[AuthConnection, socket.socket]] = []
    try:
        for _ in range(PEER_RESERVE):
            assert server._admit(MEMBER_HOST)
            ours, theirs = tcp_pair(listener)
            conn = AuthConnection(poller, guard, sock=ours, peer=(MEMBER_HOST, 1), **OPTIONS)
            extra.append((conn, theirs))
        assert not server._admit(MEMBER_HOST)
    finally:
        for conn, theirs in extra:
            conn.disconnect()
            theirs.close()
