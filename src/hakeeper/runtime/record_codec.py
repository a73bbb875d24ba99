"""The stored bytes of each record (`hakeeper.model.records`), and back.

Byte for byte what running clusters already hold: a refactor may rename the Python side, never
the JSON. Decoders raise one of `DECODE_ERRORS` on a torn or foreign value; the store decides
what such a value means where it reads it.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar, cast

from hakeeper.model.attributes import LIFETIMES, NodeAttribute
from hakeeper.model.notifications import NotifyRound
from hakeeper.model.records import (
    Assignment,
    FencedMark,
    InstanceStatus,
    JobRecord,
    MemberRecord,
    NodeFlags,
    Placement,
)
from hakeeper.model.roles import INSTANCE_ROLES, PLACED_ROLES, TARGET_ROLES, TargetRole
from hakeeper.model.state import RUNTIME_KINDS, FailCount, RuntimeKind
from hakeeper.model.wire_version import Format, FormatSupport, VersionRange

T = TypeVar("T")

#: What a decoder raises on a torn or foreign value: bad JSON or text (ValueError), a field
#: missing or of the wrong type (KeyError, TypeError), JSON that is not an object
#: (AttributeError, from ``.get``), or nested past the parser's depth (RecursionError).
DECODE_ERRORS = (ValueError, KeyError, TypeError, AttributeError, RecursionError)


def encode_assignment(assignment: Assignment) -> bytes:
    return json.dumps(
        {"placements": [[p.node, p.role, p.instance] for p in assignment.placements]}
    ).encode()


def _known(value: object, options: tuple[T, ...], what: str) -> T:
    """``value`` as the one of ``options`` it equals; a ValueError naming them otherwise."""
    for option in options:
        if value == option:
            return option
    raise ValueError(f"stored {what} {value!r} is not one of {', '.join(map(str, options))}")


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"stored {what} {value!r} is not text")
    return value


def decode_assignment(raw: bytes, resource: str, epoch: int) -> Assignment:
    data = json.loads(raw)
    placements = tuple(
        Placement(_text(n, "node"), _known(r, PLACED_ROLES, "placed role"), int(i))
        for n, r, i in data["placements"]
    )
    return Assignment(resource, placements, epoch)


def encode_status(status: InstanceStatus) -> bytes:
    data: dict[str, object] = {
        "role": status.role,
        "epoch": status.epoch,
        "ts": status.ts,
        "op": status.op,
        "rc": status.rc,
        "reason": status.reason,
    }
    if status.demotable:  # only when true: a reader from before it reads the rest alike
        data["demotable"] = True
    return json.dumps(data).encode()


def decode_status(raw: bytes, resource: str, node: str, instance: int) -> InstanceStatus:
    data = json.loads(raw)
    return InstanceStatus(
        resource,
        node,
        instance,
        _known(data["role"], INSTANCE_ROLES, "instance role"),
        int(data["epoch"]),
        float(data["ts"]),
        str(data.get("op", "")),
        int(data.get("rc", 0)),
        str(data.get("reason", "")),
        data.get("demotable") is True,
    )


def encode_failcount(count: FailCount) -> bytes:
    return json.dumps({"count": count.count, "last_failure": count.last_failure}).encode()


def decode_failcount(raw: bytes, resource: str, node: str) -> FailCount:
    data = json.loads(raw)
    return FailCount(resource, node, int(data["count"]), float(data["last_failure"]))


def encode_constraint(kind: RuntimeKind) -> bytes:
    return json.dumps({"kind": kind}).encode()


def decode_constraint(raw: bytes) -> RuntimeKind:
    return _known(json.loads(raw)["kind"], RUNTIME_KINDS, "constraint kind")


def encode_flags(flags: NodeFlags) -> bytes:
    return json.dumps({"standby": flags.standby, "maintenance": flags.maintenance}).encode()


def decode_flags(raw: bytes) -> NodeFlags:
    data: dict[str, Any] = json.loads(raw)
    return NodeFlags(bool(data.get("standby")), bool(data.get("maintenance")))


def encode_fenced(mark: FencedMark) -> bytes:
    # "suspected" only when true: marks written before it existed read the same.
    data: dict[str, object] = {"by": mark.by, "ts": mark.ts}
    if mark.suspected:
        data["suspected"] = True
    return json.dumps(data).encode()


def decode_fenced(raw: bytes) -> FencedMark:
    data = json.loads(raw)
    return FencedMark(str(data["by"]), float(data["ts"]), bool(data.get("suspected", False)))


def encode_member(record: MemberRecord) -> bytes:
    # "release" and "formats" only when known: records of releases before versions read
    # the same, and those releases ignore the extra fields.
    data: dict[str, object] = {"node": record.node, "address": record.address}
    if record.release:
        data["release"] = record.release
        data["formats"] = {
            f.format.value: [f.versions.oldest, f.versions.newest] for f in record.formats
        }
    return json.dumps(data).encode()


def decode_member(raw: bytes) -> MemberRecord:
    data = json.loads(raw)
    known = {f.value: f for f in Format}
    formats = tuple(
        FormatSupport(known[name], VersionRange(int(oldest), int(newest)))
        for name, (oldest, newest) in dict(data.get("formats", {})).items()
        if name in known  # a format a newer release added: not one this release speaks
    )
    return MemberRecord(
        str(data["node"]), str(data["address"]), str(data.get("release", "")), formats
    )


def encode_store_format(version: int) -> bytes:
    return json.dumps({"format": version}).encode()


def decode_store_format(raw: bytes) -> int:
    version = json.loads(raw)["format"]
    if not isinstance(version, int):
        raise TypeError(f"store format mark {version!r} is not a number")
    return version


def encode_target_role(role: TargetRole) -> bytes:
    return role.encode()


def decode_target_role(raw: bytes) -> TargetRole:
    return _known(raw.decode(), TARGET_ROLES, "target role")


def encode_alert_cursor(revision: int) -> bytes:
    return str(revision).encode("ascii")


def decode_alert_cursor(raw: bytes) -> int:
    text = raw.decode("ascii", "replace")
    if not text.isdigit() or len(text) > 20:
        raise ValueError(f"alert cursor {text[:40]!r} is not a revision")
    return int(text)


def encode_job(record: JobRecord) -> bytes:
    return json.dumps(
        {
            "period": record.period,
            "since": record.since,
            "last_ok": record.last_ok,
            "last_failure": record.last_failure,
            "reason": record.reason,
            "overdue_since": record.overdue_since,
        }
    ).encode()


def _time(value: object) -> float | None:
    return None if value is None else float(cast(float, value))


def decode_job(raw: bytes, name: str) -> JobRecord:
    data: dict[str, Any] = json.loads(raw)
    return JobRecord(
        name,
        float(data["period"]),
        float(data["since"]),
        _time(data.get("last_ok")),
        _time(data.get("last_failure")),
        str(data.get("reason", "")),
        _time(data.get("overdue_since")),
    )


def encode_attribute(attr: NodeAttribute) -> bytes:
    return json.dumps({"value": attr.value, "private": attr.private}).encode()


def decode_attribute(raw: bytes, node: str, lifetime: str, name: str) -> NodeAttribute:
    data = json.loads(raw)
    for known in LIFETIMES:
        if lifetime == known:
            return NodeAttribute(node, name, str(data["value"]), known, bool(data["private"]))
    raise ValueError(f"stored attribute lifetime {lifetime!r} is not reboot or forever")


def encode_notify_round(round_: NotifyRound) -> bytes:
    return json.dumps(
        {
            "initiator": round_.initiator,
            "targets": list(round_.targets),
            "variables": dict(round_.variables),
        }
    ).encode()


def decode_notify_round(raw: bytes, resource: str, round_id: str) -> NotifyRound:
    data = json.loads(raw)
    variables = data["variables"]
    if not isinstance(variables, dict):
        raise TypeError("notify round variables must be an object")
    return NotifyRound(
        resource,
        round_id,
        str(data["initiator"]),
        tuple(str(t) for t in data["targets"]),
        {str(k): str(v) for k, v in variables.items()},
    )
