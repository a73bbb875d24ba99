"""The Raft peer handshake and sealed frames (hakeeper.coord.peer_auth), without sockets."""

from __future__ import annotations

import os
import zlib

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hakeeper.coord import peer_auth
from hakeeper.coord.peer_auth import (
    FrameOpener,
    FrameRejected,
    FrameSealer,
    HandshakeFailed,
)
from tests.coord.conftest import NEW, OLD, STRANGER, handshake


def pair() -> tuple[FrameSealer, FrameOpener]:
    keys, _ = handshake((NEW,), (NEW,))
    return FrameSealer(keys.initiator_to_acceptor), FrameOpener(keys.initiator_to_acceptor)


def split(frame: bytes) -> tuple[bytes, bytes]:
    return frame[:4], frame[4:]


def test_both_sides_of_a_handshake_derive_the_same_keys() -> None:
    mine, theirs = handshake((NEW,), (NEW,))
    assert mine == theirs
    assert mine.initiator_to_acceptor != mine.acceptor_to_initiator


def test_every_connection_gets_fresh_keys() -> None:
    assert handshake((NEW,), (NEW,))[0] != handshake((NEW,), (NEW,))[0]


def test_an_acceptor_without_an_accepted_secret_is_refused() -> None:
    with pytest.raises(HandshakeFailed, match="no accepted cluster secret"):
        handshake((NEW,), (STRANGER,))


def test_an_initiator_without_an_accepted_secret_is_refused() -> None:
    n_i, n_a = peer_auth.new_nonce(), peer_auth.new_nonce()
    forged = peer_auth.finish(STRANGER, n_i, n_a)
    with pytest.raises(HandshakeFailed):
        peer_auth.check_finish(forged, (NEW, OLD), n_i, n_a)


def test_during_a_rotation_peers_proving_different_secrets_still_agree_on_keys() -> None:
    mine, theirs = handshake((NEW, OLD), (OLD, NEW))
    assert mine == theirs


def test_an_acceptor_proof_is_not_accepted_as_an_initiator_proof() -> None:
    n_i, n_a = peer_auth.new_nonce(), peer_auth.new_nonce()
    reflected = peer_auth.reply(NEW, n_i, n_a)[-peer_auth.PROOF_BYTES :]
    with pytest.raises(HandshakeFailed):
        peer_auth.check_finish(reflected, (NEW,), n_i, n_a)


def test_a_hello_of_another_protocol_is_refused() -> None:
    with pytest.raises(HandshakeFailed, match="not a hakeeper raft hello"):
        peer_auth.parse_hello(b"\x80\x04\x95" + b"\x00" * (peer_auth.HELLO_BYTES - 3))


def test_sealed_messages_open_in_order() -> None:
    sealer, opener = pair()
    for message in ({"type": "append_entries", "term": 3}, "readonly", ["status"]):
        assert opener.open(*split(sealer.seal(message))) == message


def test_a_large_message_is_compressed_and_opens() -> None:
    sealer, opener = pair()
    message = {"data": b"x" * 500_000}
    frame = sealer.seal(message)
    assert len(frame) < 100_000
    assert opener.open(*split(frame)) == message


def test_a_tampered_frame_is_refused() -> None:
    sealer, opener = pair()
    header, body = split(sealer.seal("hello"))
    with pytest.raises(FrameRejected, match="failed authentication"):
        opener.open(header, body[:-1] + bytes([body[-1] ^ 1]))


def test_a_replayed_frame_is_refused() -> None:
    sealer, opener = pair()
    frame = sealer.seal("vote for me")
    opener.open(*split(frame))
    with pytest.raises(FrameRejected):
        opener.open(*split(frame))


def test_reordered_frames_are_refused() -> None:
    sealer, opener = pair()
    first, second = sealer.seal(1), sealer.seal(2)
    with pytest.raises(FrameRejected):
        opener.open(*split(second))
    assert first  # the first was never opened: order is what failed


def test_a_frame_sealed_for_the_other_direction_is_refused() -> None:
    keys, _ = handshake((NEW,), (NEW,))
    sealer = FrameSealer(keys.acceptor_to_initiator)
    opener = FrameOpener(keys.initiator_to_acceptor)
    with pytest.raises(FrameRejected):
        opener.open(*split(sealer.seal("reflected")))


@pytest.mark.parametrize("length", [0, 16, peer_auth.MAX_FRAME + 1, 2**32 - 1])
def test_a_length_header_out_of_bounds_is_refused(length: int) -> None:
    with pytest.raises(FrameRejected, match="outside"):
        FrameOpener.frame_length(peer_auth.HEADER.pack(length))


def test_a_message_over_the_frame_bound_is_refused_when_sealed() -> None:
    sealer, _ = pair()
    with pytest.raises(FrameRejected, match="exceeds the frame bound"):
        sealer.seal(os.urandom(peer_auth.MAX_FRAME))


def test_a_frame_that_decompresses_beyond_the_bound_is_refused() -> None:
    keys, _ = handshake((NEW,), (NEW,))
    bomb = b"\x01" + zlib.compress(b"\x00" * (peer_auth.MAX_MESSAGE + 1024), 9)
    header = peer_auth.HEADER.pack(len(bomb) + peer_auth.TAG_BYTES)
    sealed = AESGCM(keys.initiator_to_acceptor).encrypt(bytes(12), bomb, header)
    with pytest.raises(FrameRejected, match="expands beyond"):
        FrameOpener(keys.initiator_to_acceptor).open(header, sealed)
