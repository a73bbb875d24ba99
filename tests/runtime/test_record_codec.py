"""Each record's stored bytes are the ones running clusters already hold, and read back."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hakeeper.model.records import (
    Assignment,
    FencedMark,
    InstanceStatus,
    MemberRecord,
    NodeFlags,
    Placement,
)
from hakeeper.model.state import FailCount
from hakeeper.runtime.record_codec import (
    decode_assignment,
    decode_constraint,
    decode_failcount,
    decode_fenced,
    decode_flags,
    decode_member,
    decode_status,
    decode_target_role,
    encode_assignment,
    encode_constraint,
    encode_failcount,
    encode_fenced,
    encode_flags,
    encode_member,
    encode_status,
    encode_target_role,
)


def test_an_assignment_is_a_list_of_node_role_instance_triples() -> None:
    assignment = Assignment("db", (Placement("n1", "promoted"), Placement("n2", "started", 1)))
    raw = encode_assignment(assignment)
    assert raw == b'{"placements": [["n1", "promoted", 0], ["n2", "started", 1]]}'
    assert decode_assignment(raw, "db", 7) == Assignment("db", assignment.placements, 7)


def test_a_status_keeps_its_field_order_and_reads_back() -> None:
    status = InstanceStatus("web", "n1", 2, "failed", 9, 100.5, "monitor", 7, "not running")
    raw = encode_status(status)
    assert raw == (
        b'{"role": "failed", "epoch": 9, "ts": 100.5, "op": "monitor", "rc": 7, '
        b'"reason": "not running"}'
    )
    assert decode_status(raw, "web", "n1", 2) == status


def test_an_old_status_without_op_rc_reason_reads_with_their_defaults() -> None:
    status = decode_status(b'{"role": "started", "epoch": 3, "ts": 1.0}', "web", "n1", 0)
    assert (status.op, status.rc, status.reason) == ("", 0, "")


def test_a_fenced_mark_names_who_and_when_and_says_suspected_only_when_it_was() -> None:
    assert encode_fenced(FencedMark("ipmi", 5.0)) == b'{"by": "ipmi", "ts": 5.0}'
    suspected = FencedMark("ipmi", 5.0, suspected=True)
    assert encode_fenced(suspected) == b'{"by": "ipmi", "ts": 5.0, "suspected": true}'
    assert decode_fenced(encode_fenced(suspected)) == suspected
    assert decode_fenced(b'{"by": "operator", "ts": 1}') == FencedMark("operator", 1.0)


def test_the_small_records_read_back_what_they_wrote() -> None:
    assert encode_failcount(FailCount("web", "n1", 2, 3.5)) == (
        b'{"count": 2, "last_failure": 3.5}'
    )
    assert decode_failcount(b'{"count": 2, "last_failure": 3.5}', "web", "n1") == FailCount(
        "web", "n1", 2, 3.5
    )
    assert encode_flags(NodeFlags(standby=True)) == b'{"standby": true, "maintenance": false}'
    assert decode_flags(b'{"maintenance": true}') == NodeFlags(maintenance=True)
    assert encode_constraint("ban") == b'{"kind": "ban"}'
    assert decode_constraint(b'{"kind": "ban"}') == "ban"
    member = MemberRecord("n1", "127.0.0.11")
    assert encode_member(member) == b'{"node": "n1", "address": "127.0.0.11"}'
    assert decode_member(encode_member(member)) == member
    assert encode_target_role("stopped") == b"stopped"
    assert decode_target_role(b"unpromoted") == "unpromoted"


@pytest.mark.parametrize(
    ("decode", "known"),
    [
        (lambda: decode_target_role(b"paused"), "started, stopped, unpromoted"),
        (lambda: decode_constraint(b'{"kind": "prefer"}'), "move, ban"),
        (
            lambda: decode_status(b'{"role": "paused", "epoch": 1, "ts": 1}', "db", "n1", 0),
            "started, promoted, stopped, failed, unknown",
        ),
        (
            lambda: decode_assignment(b'{"placements": [["n1", "paused", 0]]}', "db", 1),
            "started, promoted",
        ),
    ],
    ids=["target role", "constraint kind", "instance role", "placed role"],
)
def test_a_stored_word_outside_its_vocabulary_is_refused_with_the_known_ones(
    decode: Callable[[], object], known: str
) -> None:
    with pytest.raises(ValueError, match=f"is not one of {known}$"):
        decode()
