"""Pre-vote (Raft thesis 9.6): a member asks before it raises its term, and a member that
still hears its leader says no.

Without it, a member cut off from the majority but still connected to someone (a partial
partition, or links whose death TCP has not noticed yet; PySyncObj keeps a silent link for
a minute) becomes a candidate every election timeout and raises its term each time; when the
partition heals, its higher term deposes the healthy leader: an election and a write outage
for the whole group, caused by the one member that was wrong.

With pre-vote, a member whose election timeout passed first asks every other voter "would
you vote for me at term + 1?" without changing its own term. A voter says yes only when
that term is above its own, the asker's log is at least as up to date as its own, and it has
not heard from a leader within the minimum election timeout (and is not the leader itself:
leader stickiness). Only with a majority of yes does the member raise its term and run the
real election. A pre-vote changes nothing on the voter.

Mixed releases (rolling upgrade): the pre-vote messages travel on Raft peer-wire version 3
(`hakeeper.model.wire_version`); a member of an older release would never answer them. A
connected peer whose link speaks an older version is therefore counted as a yes: the real
vote it casts afterwards is judged by the rules it always had, so a mixed group elects
exactly as the older release did and a new member is never kept from ever winning. A peer
with no connected link counts as no. A member that has heard a pre-vote "no" with a higher
term takes that term (as for any Raft message), so a member behind on terms can catch up
and win later.

This module holds the decisions as pure functions; `hakeeper.coord.pysyncobj_compat`
wires them into PySyncObj's tick and message handler.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PRE_VOTE = "hk_pre_vote"
PRE_VOTE_RESPONSE = "hk_pre_vote_response"
PRE_VOTE_WIRE = 3
"""The first Raft peer-wire version whose members answer pre-votes."""


@dataclass(frozen=True, slots=True)
class LogPosition:
    """The index and term of the last entry of a log."""

    index: int
    term: int

    def at_least_as_up_to_date_as(self, other: LogPosition) -> bool:
        """Raft's comparison: the later last term wins, then the longer log."""
        return (self.term, self.index) >= (other.term, other.index)


@dataclass(frozen=True, slots=True)
class VoterView:
    """What a voter knows when it answers a pre-vote."""

    term: int
    last: LogPosition
    is_leader: bool
    heard_leader_ago: float | None  # seconds since a leader's append; None: never
    election_timeout: float  # the minimum election timeout


def grants_pre_vote(voter: VoterView, term: int, last: LogPosition) -> bool:
    """Would ``voter`` vote for a candidate at ``term`` whose log ends at ``last``?"""
    if term <= voter.term:
        return False  # the real vote would be refused as stale; the answer carries our term
    if voter.is_leader:
        return False
    if voter.heard_leader_ago is not None and voter.heard_leader_ago < voter.election_timeout:
        return False  # a leader is alive as far as this voter knows
    return last.at_least_as_up_to_date_as(voter.last)


def peer_answers_pre_votes(wire_version: int | None) -> bool:
    """Does a peer whose link speaks ``wire_version`` answer pre-votes (None: no link)?"""
    return wire_version is not None and wire_version >= PRE_VOTE_WIRE


def majority(voters: int) -> int:
    """The smallest majority of ``voters`` members (this one included)."""
    return voters // 2 + 1


@dataclass(slots=True)
class PreVoteRound:
    """One round of pre-vote asked by this member, for ``term``, among ``voters`` members.

    ``granted`` holds who said yes (this member and the connected older-release peers from
    the start, then each peer whose yes arrives)."""

    term: int
    voters: int
    granted: set[str] = field(default_factory=set)

    def grant(self, who: str) -> None:
        self.granted.add(who)

    @property
    def won(self) -> bool:
        return len(self.granted) >= majority(self.voters)


@dataclass(frozen=True, slots=True)
class TermSeen:
    """A member's Raft term and the leader it follows (None: none known), as it logs them."""

    term: int
    leader: str | None

    def log_text(self) -> str:
        return f"event=raft_term term={self.term} leader={self.leader or '-'}"


_TERM_LINE = re.compile(r"event=raft_term term=(\d{1,18}) leader=(\S+)")


def term_seen_in(line: str) -> TermSeen | None:
    """The (term, leader) of one ``event=raft_term`` log line of a member; None for others.
    Counting these lines per member counts its elections and leader changes."""
    found = _TERM_LINE.search(line)
    if found is None:
        return None
    return TermSeen(int(found[1]), None if found[2] == "-" else found[2])
