"""The versions in the cluster store: its format mark, and the versions each member publishes."""

from __future__ import annotations

import pytest

from hakeeper.errors import UnreadableFormat
from hakeeper.model.records import MemberRecord
from hakeeper.model.wire_version import SUPPORTED, Format, FormatSupport, VersionRange
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.record_codec import decode_member, encode_member, encode_store_format
from hakeeper.runtime.store import ClusterStore
from tests.fakes import LocalCoordinator

KEYS = KeySpace("c1")
STORE_FORMAT = SUPPORTED[Format.CLUSTER_STORE].newest


async def test_the_first_node_marks_a_new_store_with_this_releases_format() -> None:
    coord = LocalCoordinator()
    assert await ClusterStore(coord, KEYS).claim_format() == STORE_FORMAT
    stored = await coord.get(KEYS.store_format)
    assert stored is not None
    assert stored.value == encode_store_format(STORE_FORMAT)


async def test_a_store_marked_by_a_newer_release_is_refused_naming_both_versions() -> None:
    coord = LocalCoordinator()
    await coord.put(KEYS.store_format, encode_store_format(STORE_FORMAT + 1))
    with pytest.raises(UnreadableFormat) as refused:
        await ClusterStore(coord, KEYS).claim_format()
    text = str(refused.value)
    assert f"format {STORE_FORMAT + 1}, written by a newer hakeeper" in text
    assert f"reads {SUPPORTED[Format.CLUSTER_STORE]} only" in text
    assert "upgrade this node" in text
    stored = await coord.get(KEYS.store_format)
    assert stored is not None
    assert stored.value == encode_store_format(STORE_FORMAT + 1)


async def test_a_garbled_format_mark_is_refused_not_guessed() -> None:
    coord = LocalCoordinator()
    await coord.put(KEYS.store_format, b'{"format": "two"}')
    with pytest.raises(UnreadableFormat, match="unreadable format mark"):
        await ClusterStore(coord, KEYS).claim_format()


def test_a_member_record_carries_its_release_and_format_versions() -> None:
    wire = FormatSupport(Format.RAFT_PEER_WIRE, VersionRange(1, 2))
    record = MemberRecord("n1", "10.0.0.1", "0.2.0", (wire,))
    back = decode_member(encode_member(record))
    assert back == record
    assert back.versions_of(Format.RAFT_PEER_WIRE) == VersionRange(1, 2)


def test_a_member_record_of_a_release_before_versions_reads_with_none_known() -> None:
    back = decode_member(b'{"node": "n1", "address": "10.0.0.1"}')
    assert back.release == ""
    assert back.versions_of(Format.RAFT_PEER_WIRE) is None


def test_a_format_only_a_newer_release_knows_is_skipped_in_a_member_record() -> None:
    raw = b'{"node": "n1", "address": "a", "release": "9", "formats": {"warp wire": [1, 3]}}'
    assert decode_member(raw).formats == ()
