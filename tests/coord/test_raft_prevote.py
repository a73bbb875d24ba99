"""Pre-vote's decisions (hakeeper.coord.raft_prevote), as pure functions."""

from __future__ import annotations

from hakeeper.coord.raft_prevote import (
    PRE_VOTE_WIRE,
    LogPosition,
    PreVoteRound,
    TermSeen,
    VoterView,
    grants_pre_vote,
    majority,
    peer_answers_pre_votes,
    term_seen_in,
)
from hakeeper.model.wire_version import SUPPORTED, Format

LOG = LogPosition(index=10, term=4)


def voter(
    *, term: int = 4, heard: float | None = None, leader: bool = False, last: LogPosition = LOG
) -> VoterView:
    return VoterView(
        term=term, last=last, is_leader=leader, heard_leader_ago=heard, election_timeout=1.0
    )


def test_a_voter_without_a_leader_grants_an_up_to_date_candidate_the_next_term() -> None:
    assert grants_pre_vote(voter(heard=None), 5, LOG)
    assert grants_pre_vote(voter(heard=3.0), 5, LOG)


def test_a_voter_that_heard_its_leader_within_the_election_timeout_refuses() -> None:
    assert not grants_pre_vote(voter(heard=0.2), 5, LOG)


def test_the_leader_refuses_every_pre_vote() -> None:
    assert not grants_pre_vote(voter(leader=True), 9, LogPosition(99, 9))


def test_a_candidate_whose_last_term_is_older_is_refused() -> None:
    assert not grants_pre_vote(voter(), 5, LogPosition(index=50, term=3))


def test_a_candidate_with_the_same_last_term_and_a_shorter_log_is_refused() -> None:
    assert not grants_pre_vote(voter(), 5, LogPosition(index=9, term=4))


def test_a_candidate_with_a_later_last_term_is_granted_even_with_a_shorter_log() -> None:
    assert grants_pre_vote(voter(last=LogPosition(20, 3)), 5, LogPosition(index=5, term=4))


def test_a_pre_vote_for_a_term_not_above_the_voters_is_refused() -> None:
    assert not grants_pre_vote(voter(term=5), 5, LOG)
    assert not grants_pre_vote(voter(term=6), 5, LOG)


def test_only_peers_of_the_pre_vote_wire_are_asked() -> None:
    assert peer_answers_pre_votes(PRE_VOTE_WIRE)
    assert not peer_answers_pre_votes(PRE_VOTE_WIRE - 1)
    assert not peer_answers_pre_votes(None)


def test_this_release_speaks_the_pre_vote_wire() -> None:
    assert PRE_VOTE_WIRE in SUPPORTED[Format.RAFT_PEER_WIRE]


def test_a_majority_is_more_than_half() -> None:
    assert [majority(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]


def test_a_round_is_won_by_a_majority_of_distinct_voters() -> None:
    asking = PreVoteRound(term=5, voters=5, granted={"a"})
    asking.grant("b")
    asking.grant("b")  # the same voter twice counts once
    assert not asking.won
    asking.grant("c")
    assert asking.won


def test_a_lone_member_wins_its_own_round() -> None:
    assert PreVoteRound(term=1, voters=1, granted={"a"}).won


def test_a_term_line_reads_back_as_what_was_logged() -> None:
    for seen in (TermSeen(7, "10.0.0.11:7480"), TermSeen(8, None)):
        assert term_seen_in(f"ts=x level=INFO logger=y {seen.log_text()}") == seen
    assert term_seen_in("ts=x level=INFO event=raft_state from=follower to=leader") is None
