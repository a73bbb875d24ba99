"""The version vocabulary: ranges, negotiation, and the refusal of unreadable stored formats."""

from __future__ import annotations

import pytest

from hakeeper.errors import UnreadableFormat, VersionMismatch
from hakeeper.model.wire_version import (
    SUPPORTED,
    Format,
    VersionRange,
    check_readable,
    negotiate,
)


def test_two_ranges_agree_on_the_highest_version_both_speak() -> None:
    assert negotiate(Format.RAFT_PEER_WIRE, VersionRange(1, 3), VersionRange(2, 5)) == 3


def test_a_newer_node_speaks_an_older_nodes_only_version() -> None:
    assert negotiate(Format.RAFT_PEER_WIRE, VersionRange(1, 2), VersionRange(1, 1)) == 1


def test_ranges_without_a_common_version_are_refused_naming_both_and_the_node_to_upgrade() -> None:
    with pytest.raises(VersionMismatch) as refused:
        negotiate(Format.RAFT_PEER_WIRE, VersionRange(1, 1), VersionRange(2, 3))
    assert "this node speaks 1, the peer 2..3" in str(refused.value)
    assert "upgrade this node" in str(refused.value)


def test_the_older_peer_is_the_one_named_for_upgrade() -> None:
    with pytest.raises(VersionMismatch, match="upgrade the peer"):
        negotiate(Format.RAFT_PEER_WIRE, VersionRange(3, 4), VersionRange(1, 2))


@pytest.mark.parametrize(("oldest", "newest"), [(0, 1), (2, 1), (1, 256)])
def test_a_range_outside_one_byte_or_upside_down_is_refused(oldest: int, newest: int) -> None:
    with pytest.raises(ValueError, match="not within"):
        VersionRange(oldest, newest)


def test_a_cap_lowers_the_newest_version_within_the_range_only() -> None:
    assert VersionRange(1, 2).capped(1) == VersionRange(1, 1)
    with pytest.raises(ValueError, match="outside"):
        VersionRange(1, 2).capped(3)


def test_a_stored_format_this_release_reads_passes() -> None:
    check_readable(Format.CLUSTER_STORE, SUPPORTED[Format.CLUSTER_STORE].newest, "the store")


def test_a_stored_format_newer_than_this_release_is_refused_with_upgrade_this_node() -> None:
    newer = SUPPORTED[Format.CLUSTER_STORE].newest + 1
    with pytest.raises(UnreadableFormat) as refused:
        check_readable(Format.CLUSTER_STORE, newer, "cluster 'c1'")
    text = str(refused.value)
    assert f"cluster store format {newer}, written by a newer hakeeper" in text
    assert f"reads {SUPPORTED[Format.CLUSTER_STORE]} only" in text
    assert "upgrade this node" in text


def test_every_format_has_a_supported_range() -> None:
    assert set(SUPPORTED) == set(Format)
