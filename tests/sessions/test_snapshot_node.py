"""The snapshot and seed verbs on a primary node in-process: replies wait for the commit,
a seed replaces the store as one new log position, an abandoned snapshot expires."""

from __future__ import annotations

from hakeeper.sessions import entries
from hakeeper.sessions.node import Node
from hakeeper.sessions.node_config import NodeConfig
from hakeeper.sessions.snapshot import IDLE_TIMEOUT
from tests.sessions.test_bounds import open_conn

PEERS = ("127.0.0.2:1", "127.0.0.3:1")


def primary_node() -> Node:
    node = Node(NodeConfig(address="127.0.0.1:1", peers=PEERS, replicated=True))
    node.promote(1)  # not running: no stream tasks, but the role and epoch are set
    return node


def test_snapshot_reply_waits_until_its_seq_is_committed() -> None:
    node = primary_node()
    node.store.set(b"k", b"v", 0, 0)
    node.log_key(b"k")
    conn, transport = open_conn(node, peer=True)
    conn.data_received(b"hk_snapshot\r\n")
    assert bytes(transport.written) == b""
    node.note_acked(PEERS[0], node.seq)
    token, epoch, seq, keys = (int(n) for n in bytes(transport.written).split()[1:])
    assert (epoch, keys) == (1, 1)
    assert seq <= node.commit_seq
    transport.written.clear()
    conn.data_received(b"hk_snapchunk %d 1024\r\n" % token)
    node.note_acked(PEERS[0], node.seq)
    head, _, rest = bytes(transport.written).partition(b"\r\n")
    assert head == b"CHUNK %d 0" % (len(rest) - 2)
    assert [entry[1] for entry in entries.decode(rest[:-2])] == [b"k"]
    assert node.open_snapshot is None


def test_seed_replaces_the_store_as_one_new_log_position() -> None:
    node = primary_node()
    node.store.set(b"old", b"gone", 0, 0)
    node.log_key(b"old")
    before = node.seq
    conn, transport = open_conn(node, peer=True)
    conn.data_received(b"hk_seed_begin 7\r\n")
    node.note_acked(PEERS[0], node.seq)
    token = int(bytes(transport.written).split()[1])
    piece = entries.encode_put(b"new", b"here", 3, 0.0, 9)
    transport.written.clear()
    conn.data_received(
        b"hk_seed %d %d\r\n%s\r\nhk_seed_end %d 1\r\n" % (token, len(piece), piece, token)
    )
    node.note_acked(PEERS[0], node.seq)
    assert bytes(transport.written) == b"OK 1\r\nSEEDED 1 %d 1\r\n" % (before + 1)
    assert node.store.peek(b"old") is None
    assert node.store.peek(b"new") is not None
    assert node.entries_after(before, 0) is None  # replicas copy the store whole


def test_an_abandoned_snapshot_expires_and_frees_the_slot() -> None:
    node = primary_node()
    conn, _ = open_conn(node, peer=True)
    conn.data_received(b"hk_snapshot\r\n")
    assert node.open_snapshot is not None
    node.expire_transfers(node.now + IDLE_TIMEOUT + 1)
    assert node.open_snapshot is None


def test_replicas_catching_up_at_one_position_share_one_snapshot_build() -> None:
    node = primary_node()
    node.store.set(b"k", b"v", 0, 0)
    node.log_key(b"k")
    first = node.catch_up_snapshot()
    assert node.catch_up_snapshot() is first
    node.store.set(b"k", b"w", 0, 0)
    node.log_key(b"k")
    assert [e[5] for e in entries.decode(node.catch_up_snapshot())] == [b"w"]
