"""Hostile pre-vote messages (hakeeper.coord.raft_prevote) against real PySyncObj members.

Pre-vote messages arrive only over authenticated peer links (tests/security/test_raft.py
covers those); what is left is a peer, or a bug, that sends them malformed. Each must be
dropped without raising out of the handler (which would end PySyncObj's tick thread) and
without moving this member's term.
"""

from __future__ import annotations

from typing import Any

from hakeeper.coord.raft_prevote import PRE_VOTE, PRE_VOTE_RESPONSE
from tests.coord.conftest import prevote_group, settled

__all__ = ["prevote_group"]  # the fixture, used by name

MALFORMED = [
    {"type": PRE_VOTE},
    {"type": PRE_VOTE, "term": "many", "last_log_index": 1, "last_log_term": 1},
    {"type": PRE_VOTE, "term": [1], "last_log_index": {}, "last_log_term": None},
    {"type": PRE_VOTE, "term": 10**6, "last_log_index": "x"},
    {"type": PRE_VOTE_RESPONSE},
    {"type": PRE_VOTE_RESPONSE, "term": "x", "granted": "yes", "voter_term": "10"},
    {"type": PRE_VOTE_RESPONSE, "term": None, "granted": True, "voter_term": [10**6]},
]


def test_malformed_pre_vote_messages_are_dropped_and_the_group_keeps_its_leader(
    prevote_group: list[Any],
) -> None:
    leader, follower, term = settled(prevote_group)
    for message in MALFORMED:  # one group for all: each would cost a group's start
        for target in (follower, leader):
            target._SyncObj__onMessageReceived(follower.selfNode, dict(message))  # no raise
    # The attack failed: no term moved. The targets live, and still follow one leader.
    assert [m._getTerm() for m in prevote_group] == [term] * 3
    assert all(m.tick_thread_alive for m in prevote_group)
    assert settled(prevote_group)[0] is leader
