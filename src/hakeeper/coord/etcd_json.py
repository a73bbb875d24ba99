"""Pure encoding between the coordination contract and etcd's v3 JSON gRPC-gateway.

No I/O here, so every rule of the wire format is unit-tested without a server. The gateway
speaks proto3 JSON: bytes are base64, int64 fields arrive as JSON strings, and a field at its
zero value (0, false, "", the first enum member, an empty list) is *omitted* — every reader
below treats a missing field as zero.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hakeeper.coord.base import KV, Cmp, Delete, Get, Op, Put, TxnResult, WatchEvent
from hakeeper.errors import (
    Compacted,
    ConfigError,
    CoordError,
    LeaseExpired,
    NoQuorum,
)

Json = dict[str, Any]

_TARGETS = {
    "version": "VERSION",
    "create_revision": "CREATE",
    "mod_revision": "MOD",
    "value": "VALUE",
    "lease": "LEASE",
}
_RESULTS = {"==": "EQUAL", ">": "GREATER", "<": "LESS", "!=": "NOT_EQUAL"}


# --- scalars ----------------------------------------------------------------------------


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def unb64(text: str | None) -> bytes:
    if not text:
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CoordError(f"etcd sent invalid base64 {text[:40]!r}") from exc


def int64(obj: Mapping[str, Any], name: str) -> int:
    """An int64 field: a JSON string (or number), absent meaning 0."""
    value = obj.get(name)
    if value is None or value == "":
        return 0
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise CoordError(f"etcd sent a non-integer {name}: {value!r}") from exc


def prefix_end(prefix: bytes) -> bytes:
    """The exclusive ``range_end`` covering every key that starts with ``prefix``.

    Increment the last byte that is not 0xff and drop what follows; a prefix of only 0xff
    bytes (or empty) has no upper bound, which etcd spells as the single byte 0x00.
    """
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"


def key_range(key: str, prefix: bool) -> Json:
    raw = key.encode()
    body: Json = {"key": b64(raw)}
    if prefix:
        body["range_end"] = b64(prefix_end(raw))
    return body


def api_prefix(version_doc: Mapping[str, Any]) -> str:
    """The gateway path prefix for the ``GET /version`` answer (3.3 → /v3beta, else /v3)."""
    server = str(version_doc.get("etcdserver", ""))
    parts = server.split(".")
    try:
        major, minor = int(parts[0]), int(parts[1])
    except (IndexError, ValueError) as exc:
        raise CoordError(f"etcd /version answered an unknown version {server!r}") from exc
    if (major, minor) < (3, 3):
        raise CoordError(
            f"etcd {server} has no usable v3 JSON gateway: upgrade etcd to 3.4 or newer"
        )
    return "/v3beta" if (major, minor) == (3, 3) else "/v3"


def validate_endpoints(endpoints: Sequence[str]) -> list[str]:
    """Normalised endpoint URLs (no trailing slash); `ConfigError` names any bad one."""
    if isinstance(endpoints, str):
        endpoints = [endpoints]
    if not endpoints:
        raise ConfigError(
            "etcd: the endpoint list is empty: give every member's client URL, "
            "e.g. http://127.0.0.1:2379"
        )
    clean: list[str] = []
    for raw in endpoints:
        url = raw.strip().rstrip("/")
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = None
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or port is None
            or parts.path
            or parts.query
        ):
            raise ConfigError(
                f"etcd: endpoint {raw!r} is not a URL of the form http(s)://host:port: "
                "use etcd's --advertise-client-urls value, e.g. http://127.0.0.1:2379"
            )
        if url in clean:
            raise ConfigError(f"etcd: endpoint {url} is listed twice: list each member once")
        clean.append(url)
    return clean


# --- requests ---------------------------------------------------------------------------


def encode_cmp(cmp: Cmp) -> Json:
    try:
        target = _TARGETS[cmp.target]
        result = _RESULTS[cmp.op]
    except KeyError as exc:
        raise ValueError(f"unsupported compare {cmp!r}") from exc
    body: Json = {"key": b64(cmp.key), "target": target, "result": result}
    if cmp.target == "value":
        if not isinstance(cmp.operand, bytes):
            raise TypeError(f"a value compare needs bytes, got {cmp.operand!r}")
        body["value"] = b64(cmp.operand)
    else:
        if isinstance(cmp.operand, bytes) or not isinstance(cmp.operand, int):
            raise TypeError(f"a {cmp.target} compare needs an int, got {cmp.operand!r}")
        body[cmp.target] = str(cmp.operand)
    return body


def encode_put(key: str, value: bytes, lease: int = 0) -> Json:
    body: Json = {"key": b64(key), "value": b64(value)}
    if lease:
        body["lease"] = str(lease)
    return body


def encode_op(op: Op) -> Json:
    if isinstance(op, Put):
        return {"request_put": encode_put(op.key, op.value, op.lease)}
    if isinstance(op, Delete):
        return {"request_delete_range": key_range(op.key, op.prefix)}
    if isinstance(op, Get):
        return {"request_range": key_range(op.key, op.prefix)}
    raise TypeError(f"not a txn op: {op!r}")


def encode_txn(compare: Sequence[Cmp], success: Sequence[Op], failure: Sequence[Op]) -> Json:
    return {
        "compare": [encode_cmp(c) for c in compare],
        "success": [encode_op(o) for o in success],
        "failure": [encode_op(o) for o in failure],
    }


# --- responses --------------------------------------------------------------------------


def header_revision(body: Mapping[str, Any]) -> int:
    return int64(body.get("header") or {}, "revision")


def decode_kv(obj: Mapping[str, Any]) -> KV:
    return KV(
        key=unb64(obj.get("key")).decode(errors="surrogateescape"),
        value=unb64(obj.get("value")),
        create_revision=int64(obj, "create_revision"),
        mod_revision=int64(obj, "mod_revision"),
        version=int64(obj, "version"),
        lease=int64(obj, "lease"),
    )


def decode_kvs(body: Mapping[str, Any]) -> tuple[KV, ...]:
    return tuple(decode_kv(kv) for kv in body.get("kvs") or ())


def _op_response(op: Op, response: Mapping[str, Any]) -> tuple[KV, ...] | int | None:
    # Decode by the op we sent, not by which oneof field came back: an empty message in a
    # oneof may be rendered as {} by some gateway versions.
    if isinstance(op, Get):
        return decode_kvs(response.get("response_range") or {})
    if isinstance(op, Delete):
        return int64(response.get("response_delete_range") or {}, "deleted")
    return None


def decode_txn(body: Mapping[str, Any], success: Sequence[Op], failure: Sequence[Op]) -> TxnResult:
    succeeded = bool(body.get("succeeded", False))
    ops = success if succeeded else failure
    responses = list(body.get("responses") or ())
    if len(responses) != len(ops):
        raise CoordError(f"etcd answered a txn of {len(ops)} ops with {len(responses)} responses")
    return TxnResult(
        succeeded=succeeded,
        revision=header_revision(body),
        responses=tuple(_op_response(op, r) for op, r in zip(ops, responses, strict=True)),
    )


def decode_event(obj: Mapping[str, Any]) -> WatchEvent:
    kv = decode_kv(obj.get("kv") or {})
    return WatchEvent("delete" if obj.get("type") == "DELETE" else "put", kv)


@dataclass(frozen=True, slots=True)
class WatchMessage:
    """One object of the watch stream, reduced to what the watcher acts on."""

    events: tuple[WatchEvent, ...] = ()
    created: bool = False
    canceled: bool = False
    compact_revision: int = 0
    cancel_reason: str = ""
    revision: int = 0


def decode_watch(result: Mapping[str, Any]) -> WatchMessage:
    return WatchMessage(
        events=tuple(decode_event(e) for e in result.get("events") or ()),
        created=bool(result.get("created", False)),
        canceled=bool(result.get("canceled", False)),
        compact_revision=int64(result, "compact_revision"),
        cancel_reason=str(result.get("cancel_reason", "")),
        revision=header_revision(result),
    )


# --- errors -----------------------------------------------------------------------------

# Messages from etcd that mean "this member cannot commit now". The first group is refused
# before the request is proposed, so even a write may safely go to another member.
_NOT_PROPOSED = ("no leader", "not capable", "too many requests")
_NO_QUORUM = (
    *_NOT_PROPOSED,
    "request timed out",
    "timed out waiting for read index",
    "leader changed",
    "raft: stopped",
    "server stopped",
    "request cancelled",
)
_GRPC_UNAVAILABLE, _GRPC_DEADLINE = 14, 4


@dataclass(frozen=True, slots=True)
class EtcdFailure:
    """An error object from the gateway, classified."""

    code: int
    message: str

    @property
    def kind(self) -> type[CoordError]:
        text = self.message.lower()
        if "lease not found" in text:
            return LeaseExpired
        if "compacted" in text:
            return Compacted
        if any(s in text for s in _NO_QUORUM) or self.code in (_GRPC_UNAVAILABLE, _GRPC_DEADLINE):
            return NoQuorum
        return CoordError

    @property
    def not_proposed(self) -> bool:
        """True if etcd refused before proposing: retrying elsewhere cannot apply it twice."""
        return any(s in self.message.lower() for s in _NOT_PROPOSED)


def find_error(body: Mapping[str, Any]) -> EtcdFailure | None:
    """The error in a gateway answer: ``{"code", "message"}`` for unary calls, or
    ``{"error": {"grpc_code", "message"}}`` inside a stream; None if it is a result.

    ``LeaseGrantResponse`` has a string field named ``error`` too, hence the checks on type.
    """
    nested = body.get("error")
    if isinstance(nested, Mapping):
        code = nested.get("grpc_code", nested.get("code", 0))
        return EtcdFailure(int(code or 0), str(nested.get("message", nested)))
    if "code" in body and "message" in body:
        return EtcdFailure(int(body.get("code") or 0), str(body["message"]))
    if isinstance(nested, str) and nested:
        return EtcdFailure(0, nested)
    return None
