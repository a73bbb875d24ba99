"""Pre-vote wired into real PySyncObj members (`GuardedSyncObj`), three in this process on
loopback with PySyncObj's plain transport (the authenticated one is under test elsewhere).

A follower is made to miss its leader by moving its election deadline into the past, which
is what a late heartbeat or a cut link does to it.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from hakeeper.coord.raft_prevote import PRE_VOTE
from tests.coord.conftest import CONF, settled, wait_until


def miss_the_leader(member: Any) -> None:
    member._SyncObj__raftElectionDeadline = 0.0


def test_a_follower_that_misses_a_living_leader_raises_no_term(prevote_group: list[Any]) -> None:
    leader, follower, term = settled(prevote_group)
    for _ in range(5):
        miss_the_leader(follower)
        time.sleep(0.3)  # a tick or more: the pre-vote goes out and is refused
    assert [m._getTerm() for m in prevote_group] == [term] * 3
    assert leader._isLeader()
    assert follower._getLeader() == leader.selfNode


def test_peers_of_a_release_without_pre_vote_do_not_keep_a_member_from_its_election(
    prevote_group: list[Any],
) -> None:
    _, follower, term = settled(prevote_group)
    # Its peers' links speak wire 2: they would never answer a pre-vote, so they count as a
    # yes and the real election runs, judged by the peers' own rules (as before pre-vote).
    follower._SyncObj__transport.peer_wire = lambda node: 2
    miss_the_leader(follower)
    wait_until("the follower's real election", lambda: follower._getTerm() > term)


def test_a_deadline_that_passes_during_a_tick_starts_no_election(
    prevote_group: list[Any],
) -> None:
    leader, follower, term = settled(prevote_group)
    journal = follower._SyncObj__raftLog
    flush = journal.onOneSecondTimer
    paused = threading.Event()

    def slow_flush() -> None:
        # Between the pre-vote's look at the deadline and PySyncObj's own election check
        # the journal flushes: one slow flush (or a SIGSTOP there) outlasts the deadline.
        journal.onOneSecondTimer = flush
        time.sleep(CONF["raftMaxTimeout"] + 0.3)
        paused.set()
        flush()

    journal.onOneSecondTimer = slow_flush
    assert paused.wait(10), "the follower's journal never flushed"
    time.sleep(0.5)  # the ticks after the pause: heartbeats arrive, nothing is elected
    assert [m._getTerm() for m in prevote_group] == [term] * 3
    assert leader._isLeader()


def test_a_follower_that_says_yes_to_a_pre_vote_does_not_run_against_it(
    prevote_group: list[Any],
) -> None:
    leader, _, term = settled(prevote_group)
    asker, other = [m for m in prevote_group if m is not leader]
    for member in (asker, other):
        member._SyncObj__raftElectionDeadline = math.inf  # no election until the test says
    leader.destroy_synchronous()
    time.sleep(CONF["raftMinTimeout"] + 0.3)  # neither counts the leader as heard any more
    answer = other._answer_pre_vote

    def due_meanwhile(node: Any, message: dict[str, Any]) -> None:
        # The other's own deadline ran out while the request waited in its poll: its next
        # tick would ask for the same term, and both would stand in a split election.
        other._SyncObj__raftElectionDeadline = 0.0
        answer(node, message)

    other._answer_pre_vote = due_meanwhile
    transport = other._SyncObj__transport
    send = transport.send
    sent: list[str] = []

    def noting(node: Any, message: dict[str, Any]) -> Any:
        sent.append(message.get("type", ""))
        return send(node, message)

    transport.send = noting
    asker._SyncObj__raftElectionDeadline = 0.0
    wait_until(
        "a new leader both followers follow",
        lambda: (
            any(m._isLeader() for m in (asker, other))
            and len({m._getLeader() for m in (asker, other)}) == 1
        ),
    )
    assert PRE_VOTE not in sent
    # A split election would have taken a second one (term + 2).
    assert [m._getTerm() for m in (asker, other)] == [term + 1] * 2
