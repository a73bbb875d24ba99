"""A follower moves an append past what it provably shares with the leader, so PySyncObj's
handler cuts its log only from a real conflict, never an entry it applied."""

from __future__ import annotations

from hakeeper.coord.raft_follower import Append, Entry, shared_append


def log_of(*terms: int) -> list[Entry]:
    """Entries 1..n with these terms."""
    return [(b"", index, term) for index, term in enumerate(terms, start=1)]


def test_a_heartbeat_from_a_lagging_next_index_keeps_the_committed_entries() -> None:
    log = log_of(1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
    found = shared_append(log, commit_index=8, leader_term=2, append=Append(5, 1, ()))
    assert found == Append(8, 1, ())


def test_entries_of_the_leader_s_own_term_are_kept_whole() -> None:
    log = log_of(1, 1, 1, 1, 1, 2, 2, 2, 2, 2)
    found = shared_append(log, commit_index=3, leader_term=2, append=Append(5, 1, ()))
    assert found == Append(10, 2, ())


def test_a_batch_the_follower_holds_already_cuts_nothing_after_it() -> None:
    log = log_of(1, 1, 1, 1, 1, 2, 2, 2)
    batch = Append(5, 1, tuple(log[5:7]))  # entries 6 and 7, as held
    found = shared_append(log, commit_index=5, leader_term=2, append=batch)
    assert found == Append(8, 2, ())


def test_a_conflicting_entry_is_where_the_append_starts() -> None:
    log = log_of(1, 1, 1, 1, 1, 1, 1)
    batch = Append(5, 1, ((b"", 6, 1), (b"x", 7, 3), (b"y", 8, 3)))
    found = shared_append(log, commit_index=6, leader_term=3, append=batch)
    assert found == Append(6, 1, ((b"x", 7, 3), (b"y", 8, 3)))


def test_an_uncommitted_tail_of_an_older_term_is_not_claimed() -> None:
    log = log_of(1, 1, 1, 1, 1, 1, 1, 1)
    found = shared_append(log, commit_index=5, leader_term=3, append=Append(5, 1, ()))
    assert found == Append(5, 1, ())


def test_new_entries_past_the_log_are_appended_unchanged() -> None:
    log = log_of(1, 1, 1)
    batch = Append(3, 1, ((b"x", 4, 2),))
    assert shared_append(log, commit_index=3, leader_term=2, append=batch) is batch


def test_a_starting_point_the_follower_does_not_hold_is_left_for_pysyncobj_to_refuse() -> None:
    log = log_of(1, 1, 1)
    beyond = Append(7, 1, ())
    other_term = Append(3, 2, ())
    assert shared_append(log, commit_index=3, leader_term=2, append=beyond) is beyond
    assert shared_append(log, commit_index=3, leader_term=2, append=other_term) is other_term
