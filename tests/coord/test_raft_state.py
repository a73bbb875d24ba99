"""The replicated state machine's apply rules, called directly (no Raft, no processes)."""

from __future__ import annotations

import pickle
import time

import pytest

from hakeeper.coord import raft_state
from hakeeper.coord.raft_state import KVStateMachine


def apply(state: KVStateMachine, command: str, *args: object) -> object:
    return getattr(state, command)(*args, _doApply=True)


def put(state: KVStateMachine, req: str, key: str, value: bytes, lease: int = 0) -> object:
    return apply(state, "cmd_txn", req, [], [("put", key, value, lease)], [])


def test_a_repeated_request_id_applies_once() -> None:
    state = KVStateMachine()
    first = put(state, "req-1", "/k", b"v")
    again = put(state, "req-1", "/k", b"v")
    assert first == again
    assert state.revision == 1


def test_reads_without_request_id_are_not_cached() -> None:
    state = KVStateMachine()
    put(state, "w", "/k", b"v")
    apply(state, "cmd_txn", "", [], [("get", "/k", False, None)], [])
    assert "" not in state.requests


def test_a_txn_writing_nothing_keeps_the_revision() -> None:
    state = KVStateMachine()
    put(state, "w", "/k", b"v")
    apply(state, "cmd_txn", "d", [], [("del", "/missing", False, None)], [])
    assert state.revision == 1


def test_all_ops_of_a_txn_share_one_revision() -> None:
    state = KVStateMachine()
    apply(state, "cmd_txn", "t", [], [("put", "/a", b"1", 0), ("put", "/b", b"2", 0)], [])
    assert state.revision == 1
    assert {e.revision for e in state.history} == {1}


def test_compare_on_a_missing_key_sees_zero_and_empty() -> None:
    state = KVStateMachine()
    ok, _, _ = apply(  # type: ignore[misc]
        state,
        "cmd_txn",
        "c",
        [("/none", "create_revision", "==", 0), ("/none", "value", "==", b"")],
        [("put", "/none", b"x", 0)],
        [],
    )
    assert ok


def test_a_put_naming_a_missing_lease_changes_nothing() -> None:
    state = KVStateMachine()
    outcome = put(state, "p", "/k", b"v", lease=42)
    assert outcome == ("lease_not_found", 42)
    assert state.kvs == {}
    assert state.revision == 0


def test_a_stale_expire_is_ignored_after_a_renewal() -> None:
    state = KVStateMachine()
    lease, _ = apply(state, "cmd_grant", "g", 5.0)  # type: ignore[misc]
    put(state, "p", "/k", b"v", lease)
    apply(state, "cmd_keepalive", lease)
    assert apply(state, "cmd_expire", lease, 0) is False
    assert "/k" in state.kvs


def test_expire_deletes_the_lease_keys_in_one_revision() -> None:
    state = KVStateMachine()
    lease, _ = apply(state, "cmd_grant", "g", 5.0)  # type: ignore[misc]
    put(state, "p1", "/a", b"1", lease)
    put(state, "p2", "/b", b"2", lease)
    assert apply(state, "cmd_expire", lease, 0) is True
    assert state.kvs == {}
    deletes = [e for e in state.history if e.type == "delete"]
    assert [e.kv.key for e in deletes] == ["/a", "/b"]
    assert {e.revision for e in deletes} == {3}
    assert apply(state, "cmd_keepalive", lease) == 0.0


def test_a_key_moved_to_another_lease_survives_the_old_lease() -> None:
    state = KVStateMachine()
    old, _ = apply(state, "cmd_grant", "g1", 5.0)  # type: ignore[misc]
    new, _ = apply(state, "cmd_grant", "g2", 5.0)  # type: ignore[misc]
    put(state, "p1", "/k", b"1", old)
    put(state, "p2", "/k", b"2", new)
    apply(state, "cmd_revoke", old)
    assert "/k" in state.kvs


def test_leases_fall_due_after_their_ttl_on_the_local_clock() -> None:
    state = KVStateMachine()
    lease, _ = apply(state, "cmd_grant", "g", 2.0)  # type: ignore[misc]
    renewed = state.renewed_at[lease]
    assert state.due_leases(renewed + 1.9) == []
    assert state.due_leases(renewed + 2.0) == [(lease, 0)]


def test_a_restored_snapshot_counts_leases_from_the_restore() -> None:
    state = KVStateMachine()
    lease, _ = apply(state, "cmd_grant", "g", 2.0)  # type: ignore[misc]
    snapshot = pickle.loads(pickle.dumps(state._serialize()))
    restored = KVStateMachine()
    restored._deserialize(snapshot)
    assert restored.leases.keys() == {lease}
    assert restored.renewed_at[lease] >= state.renewed_at[lease]


def test_snapshots_carry_no_local_state() -> None:
    state = KVStateMachine()
    state.subscribe(lambda events: None, None)
    data = state._serialize()
    assert not {"lock", "renewed_at", "subscribers"} & data.keys()
    pickle.dumps(data)


def test_history_is_trimmed_by_whole_revisions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(raft_state, "HISTORY_LIMIT", 3)
    state = KVStateMachine()
    apply(state, "cmd_txn", "a", [], [("put", "/a", b"1", 0), ("put", "/b", b"1", 0)], [])
    apply(state, "cmd_txn", "b", [], [("put", "/a", b"2", 0), ("put", "/b", b"2", 0)], [])
    assert state.compacted_revision == 1
    assert [e.revision for e in state.history] == [2, 2]


def test_watching_compacted_history_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(raft_state, "HISTORY_LIMIT", 2)
    state = KVStateMachine()
    for i in range(5):
        put(state, f"r{i}", "/k", str(i).encode())
    with pytest.raises(ValueError, match="3"):
        state.subscribe(lambda events: None, 1)
    assert state.subscribers == []


def test_subscribe_returns_the_backlog_from_the_start_revision() -> None:
    state = KVStateMachine()
    for i in range(4):
        put(state, f"r{i}", f"/k{i}", b"v")
    backlog = state.subscribe(lambda events: None, 3)
    assert [e.kv.key for e in backlog] == ["/k2", "/k3"]


def test_renewed_ago_counts_from_the_last_applied_renewal() -> None:
    state = KVStateMachine()
    lease_id, _ = apply(state, "cmd_grant", "g-1", 1.0)  # type: ignore[misc]
    state.renewed_at[lease_id] -= 5.0
    apply(state, "cmd_keepalive", lease_id)

    age = state.renewed_ago(lease_id, time.monotonic())

    assert age is not None
    assert 0 <= age < 5.0
    assert state.renewed_ago(lease_id + 1, time.monotonic()) is None
