"""MemberRecord: which peer lists are accepted, and one membership change at a time."""

from __future__ import annotations

from hakeeper.coord.raft_member_record import MemberRecord
from hakeeper.coord.raft_peers import membership_fingerprint

A, B, C, D = "10.0.0.1:7480", "10.0.0.2:7480", "10.0.0.3:7480", "10.0.0.4:7480"


def _formed() -> MemberRecord:
    state = MemberRecord()
    peers = [A, B, C]
    assert state.cmd_identify(membership_fingerprint(peers), peers, A, _doApply=True)[0] == "ok"
    return state


def _identify(state: MemberRecord, peers: list[str], address: str = "") -> str:
    verdict: str = state.cmd_identify(membership_fingerprint(peers), peers, address, _doApply=True)[
        0
    ]
    return verdict


def test_the_first_identify_forms_the_group_with_its_list() -> None:
    members = _formed().members()
    assert members.voters == (A, B, C)
    assert members.version == 1


def test_a_list_of_another_group_is_unknown() -> None:
    assert _identify(_formed(), [A, B, D]) == "unknown"


def test_a_new_member_listing_itself_is_accepted_before_its_addition() -> None:
    assert _identify(_formed(), [A, B, C, D], D) == "ok"


def test_an_earlier_committed_list_is_accepted_after_a_change() -> None:
    state = _formed()
    assert state.cmd_member_propose("r1", "add", D, 1, 0.0, _doApply=True) == "ok"
    state.apply_member_entry("add", D)
    assert state.members().voters == (A, B, C, D)
    assert _identify(state, [A, B, C]) == "ok"
    assert _identify(state, [A, B, C, D]) == "ok"


def test_a_second_change_is_refused_while_one_is_pending() -> None:
    state = _formed()
    assert state.cmd_member_propose("r1", "add", D, 1, 0.0, _doApply=True) == "ok"
    assert state.cmd_member_propose("r2", "remove", A, 1, 0.0, _doApply=True) == "busy"


def test_an_aborted_change_frees_the_slot_and_changes_nothing() -> None:
    state = _formed()
    state.cmd_member_propose("r1", "add", D, 1, 0.0, _doApply=True)
    assert state.cmd_member_abort("add", D, _doApply=True) is True
    assert state.members().pending is None
    assert state.members().voters == (A, B, C)


def test_a_removed_address_is_retired_for_good() -> None:
    state = _formed()
    state.cmd_member_propose("r1", "remove", C, 1, 0.0, _doApply=True)
    state.apply_member_entry("rem", C)
    assert state.members().retired == (C,)
    assert _identify(state, [A, B, C], C) == "retired"
    assert state.cmd_member_propose("r2", "add", C, 2, 0.0, _doApply=True) == "retired"


def test_a_proposal_from_an_older_version_is_stale() -> None:
    state = _formed()
    state.cmd_member_propose("r1", "add", D, 1, 0.0, _doApply=True)
    state.apply_member_entry("add", D)
    assert state.cmd_member_propose("r2", "remove", A, 1, 0.0, _doApply=True) == "stale"


def test_the_pending_change_carries_its_proposers_deadline() -> None:
    state = _formed()
    state.cmd_member_propose("r1", "add", D, 1, 1234.5, _doApply=True)
    assert state.members().pending == ("add", D)
    assert state.members().pending_until == 1234.5
