"""Version negotiation in the Raft peer handshake (hakeeper.coord.peer_auth), without sockets."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pysyncobj.poller import createPoller

from hakeeper.config.secret_file import SecretFile, read_secret_file, write_secret_file
from hakeeper.coord import peer_auth
from hakeeper.coord.pysyncobj_compat import CONNECTION_STATE
from hakeeper.coord.raft_connection import WIRE_MAX_ENV, AuthConnection, PeerGuard, wire_versions
from hakeeper.errors import ConfigError, VersionMismatch
from hakeeper.model.wire_version import VersionRange
from tests.coord.conftest import NEW, WIRE, handshake

V1_ONLY = VersionRange(1, 1)
V2_ONLY = VersionRange(2, 2)


def test_a_hello_offering_version_one_alone_is_byte_for_byte_the_hello_before_versions() -> None:
    nonce = b"\x07" * peer_auth.NONCE_BYTES
    assert peer_auth.hello(nonce, V1_ONLY) == b"HKRAFT\x01\x00" + nonce


def test_a_hello_carries_the_offered_range() -> None:
    offer = peer_auth.parse_hello(peer_auth.hello(peer_auth.new_nonce(), VersionRange(1, 2)))
    assert offer.versions == VersionRange(1, 2)


def test_two_nodes_of_this_release_agree_on_its_newest_version() -> None:
    offer = peer_auth.parse_hello(peer_auth.hello(peer_auth.new_nonce(), WIRE))
    assert peer_auth.choose(WIRE, offer).version == WIRE.newest


@pytest.mark.parametrize(
    ("offer", "acceptor"), [(V1_ONLY, WIRE), (WIRE, V1_ONLY)], ids=["old-dials", "old-accepts"]
)
def test_a_node_pinned_to_version_one_and_a_newer_node_agree_on_one_and_the_same_keys(
    offer: VersionRange, acceptor: VersionRange
) -> None:
    mine, theirs = handshake((NEW,), (NEW,), offer, acceptor)
    assert mine == theirs


def test_the_keys_of_version_two_differ_from_those_of_version_one() -> None:
    # Same secrets: what differs is the version the keys are bound to.
    assert handshake((NEW,), (NEW,), V2_ONLY, V2_ONLY) != handshake((NEW,), (NEW,), V1_ONLY)


def test_an_offer_rewritten_in_flight_to_an_older_version_fails_the_proof() -> None:
    n_i, n_a = peer_auth.new_nonce(), peer_auth.new_nonce()
    # The acceptor saw a forged hello offering 1..2 and chose 2; the initiator offered 2 only.
    forged = peer_auth.parse_hello(peer_auth.hello(n_i, VersionRange(1, 2)))
    agreed = peer_auth.choose(V2_ONLY, forged)
    reply = peer_auth.reply(NEW, n_i, n_a, agreed)
    with pytest.raises(peer_auth.HandshakeFailed, match="no accepted cluster secret"):
        peer_auth.check_reply(reply, (NEW,), n_i, V2_ONLY)


def test_an_acceptor_sharing_no_version_answers_with_its_range_and_the_initiator_says_so() -> None:
    n_i = peer_auth.new_nonce()
    offer = peer_auth.parse_hello(peer_auth.hello(n_i, V2_ONLY))
    with pytest.raises(VersionMismatch):
        peer_auth.choose(V1_ONLY, offer)
    answer = peer_auth.refusal(V1_ONLY)
    assert len(answer) == peer_auth.REPLY_BYTES
    with pytest.raises(peer_auth.VersionRefused) as refused:
        peer_auth.check_reply(answer, (NEW,), n_i, V2_ONLY)
    assert "this node speaks 2, the peer 1" in str(refused.value)
    assert "upgrade the peer" in str(refused.value)


def test_a_reply_choosing_a_version_that_was_not_offered_is_refused() -> None:
    n_i, n_a = peer_auth.new_nonce(), peer_auth.new_nonce()
    offer = peer_auth.parse_hello(peer_auth.hello(n_i, V2_ONLY))
    reply = peer_auth.reply(NEW, n_i, n_a, peer_auth.choose(V2_ONLY, offer))
    with pytest.raises(peer_auth.HandshakeFailed, match="not a hakeeper raft reply"):
        peer_auth.check_reply(reply, (NEW,), n_i, V1_ONLY)


@pytest.mark.parametrize("header", [b"HKRAFT\x00\x01", b"HKRAFT\x01\x02", b"HKRAFT\x02\x00"])
def test_a_hello_with_a_malformed_version_header_is_refused(header: bytes) -> None:
    with pytest.raises(peer_auth.HandshakeFailed, match="not a hakeeper raft hello"):
        peer_auth.parse_hello(header + peer_auth.new_nonce())


def test_the_wire_cap_setting_lowers_the_offer_and_refuses_what_this_release_cannot_speak() -> None:
    assert wire_versions({}) == WIRE
    assert wire_versions({WIRE_MAX_ENV: "1"}) == V1_ONLY
    with pytest.raises(ConfigError, match=f"{WIRE_MAX_ENV}='9'.*speaks Raft peer-wire versions"):
        wire_versions({WIRE_MAX_ENV: "9"})


def _pump(poller: Any, until: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10.0
    while not until():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        poller.poll(0.02)


def _recv_exactly(sock: socket.socket, size: int, poller: Any) -> bytes:
    data = b""
    deadline = time.monotonic() + 10.0
    while len(data) < size:
        assert time.monotonic() < deadline, "the dialler sent no hello"
        poller.poll(0.02)  # the dialler's side writes from its poll callbacks
        with contextlib.suppress(BlockingIOError):
            data += sock.recv(size - len(data))
    return data


def test_a_dialler_falls_back_to_version_one_for_a_peer_of_a_release_before_versions(
    tmp_path: Path,
) -> None:
    write_secret_file(tmp_path / "secret")
    secret = read_secret_file(tmp_path / "secret").current
    guard = PeerGuard(SecretFile(tmp_path / "secret"), WIRE)
    poller = createPoller("auto")
    options: dict[str, Any] = {
        "timeout": 60.0, "send_buffer": 2**16, "recv_buffer": 2**16, "keepalive": None,
    }  # fmt: skip
    conn = AuthConnection(poller, guard, **options)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        host, port = listener.getsockname()
        # 1. The old release reads a hello that is not its magic, and closes without a word.
        conn.connect(host, port)
        old, _ = listener.accept()
        old.setblocking(False)
        first = _recv_exactly(old, peer_auth.HELLO_BYTES, poller)
        assert first[:8] == b"HKRAFT" + bytes((WIRE.newest, WIRE.oldest))  # the full range
        old.close()
        _pump(poller, lambda: conn.state == CONNECTION_STATE.DISCONNECTED, "the close")
        # 2. The next dial offers version 1 alone: the old release's own handshake.
        conn.connect(host, port)
        old, _ = listener.accept()
        old.setblocking(False)
        try:
            second = _recv_exactly(old, peer_auth.HELLO_BYTES, poller)
            assert second[:8] == peer_auth.MAGIC
            n_i, n_a = second[8:], peer_auth.new_nonce()
            old.sendall(peer_auth.reply(secret, n_i, n_a))
            proof = _recv_exactly(old, peer_auth.FINISH_BYTES, poller)
            assert peer_auth.check_finish(proof, (secret,), n_i, n_a) == secret
            _pump(poller, lambda: conn.state == CONNECTION_STATE.CONNECTED, "the link")
        finally:
            old.close()
            conn.disconnect()
    # 3. Once that link ends, the peer may have been upgraded: the full range again.
    assert guard.offer(f"{host}:{port}") == WIRE
