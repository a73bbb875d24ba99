"""The wire between the tools and the local daemon's attribute service.

One exchange per connection, each message one JSON line of at most `MAX_LINE` bytes:

1. the service sends ``{"nonce": "<32 hex>"}``, fresh per connection;
2. the tool sends ``{"mac": "<hex>", "request": {...}}``, where ``mac`` is HMAC-SHA256 under
   the cluster secret of the nonce, a newline and the request's canonical JSON (`request_mac`):
   only a holder of the secret can ask, and a recorded exchange cannot be replayed;
3. the service answers `ToolAnswer` and closes.

Both sides read with `IO_TIMEOUT`; the service checks every field of the request (`ToolRequest`)
before it touches the store.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

from hakeeper.model.attributes import LIFETIMES, Lifetime, NodeAttribute

MAX_LINE = 16 * 1024
IO_TIMEOUT = 5.0

ToolOp = Literal[
    "attr_get", "attr_set", "attr_delete", "nodes", "resource_meta", "locate", "property"
]
TOOL_OPS: tuple[ToolOp, ...] = (
    "attr_get",
    "attr_set",
    "attr_delete",
    "nodes",
    "resource_meta",
    "locate",
    "property",
)
_FIELD_LIMIT = 1024


class ProtocolError(ValueError):
    """A message that is not what the protocol allows; the text says which part."""


@dataclass(frozen=True, slots=True)
class ToolRequest:
    op: ToolOp
    node: str = ""
    name: str = ""
    value: str = ""
    lifetime: Lifetime = "reboot"
    private: bool = False
    resource: str = ""

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, data: object) -> ToolRequest:
        if not isinstance(data, dict):
            raise ProtocolError("request: expected an object")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ProtocolError(f"request: unknown fields {sorted(unknown)}")
        op = data.get("op")
        chosen_op = next((o for o in TOOL_OPS if o == op), None)
        if chosen_op is None:
            raise ProtocolError(f"request: op {op!r} is not one of {', '.join(TOOL_OPS)}")
        lifetime = data.get("lifetime", "reboot")
        chosen_life = next((v for v in LIFETIMES if v == lifetime), None)
        if chosen_life is None:
            raise ProtocolError(f"request: lifetime {lifetime!r} is not reboot or forever")
        texts: dict[str, str] = {}
        for name in ("node", "name", "value", "resource"):
            value = data.get(name, "")
            if not isinstance(value, str) or len(value) > _FIELD_LIMIT:
                raise ProtocolError(f"request: {name} must be text of at most {_FIELD_LIMIT}")
            texts[name] = value
        private = data.get("private", False)
        if not isinstance(private, bool):
            raise ProtocolError("request: private must be true or false")
        return cls(chosen_op, lifetime=chosen_life, private=private, **texts)


@dataclass(frozen=True, slots=True)
class NodeEntry:
    id: int
    name: str
    member: bool


@dataclass(frozen=True, slots=True)
class ToolAnswer:
    """``error`` set: the request failed (``missing``: what it named does not exist)."""

    value: str | None = None
    error: str = ""
    missing: bool = False
    local: str = ""
    nodes: tuple[NodeEntry, ...] = ()
    located: tuple[tuple[str, str], ...] = ()  # (node, role)

    def to_wire(self) -> dict[str, Any]:
        data = asdict(self)
        data["nodes"] = [asdict(n) for n in self.nodes]
        data["located"] = [list(x) for x in self.located]
        return data

    @classmethod
    def from_wire(cls, data: object) -> ToolAnswer:
        if not isinstance(data, dict):
            raise ProtocolError("answer: expected an object")
        try:
            value = data.get("value")
            return cls(
                None if value is None else str(value),
                str(data.get("error", "")),
                bool(data.get("missing", False)),
                str(data.get("local", "")),
                tuple(
                    NodeEntry(int(n["id"]), str(n["name"]), bool(n["member"]))
                    for n in data.get("nodes", [])
                ),
                tuple((str(n), str(r)) for n, r in data.get("located", [])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"answer: {exc}") from None


def canonical(data: object) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def request_mac(secret: bytes, nonce: str, request: ToolRequest) -> str:
    message = nonce.encode() + b"\n" + canonical(request.to_wire())
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def mac_matches(secrets: tuple[bytes, ...], nonce: str, request: ToolRequest, mac: str) -> bool:
    """Whether ``mac`` was made with any accepted secret (compared in constant time)."""
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(request_mac(secret, nonce, request), mac)
    return found


def line(data: object) -> bytes:
    return canonical(data) + b"\n"


def decode_line(raw: bytes) -> Any:
    if len(raw) > MAX_LINE or not raw.endswith(b"\n"):
        raise ProtocolError(f"a message is one line of at most {MAX_LINE} bytes")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"a message is JSON: {exc}") from None


def checked_attribute(request: ToolRequest) -> NodeAttribute:
    """The attribute ``attr_set`` asks for (a ConfigError for a bad name or value)."""
    return NodeAttribute(
        request.node, request.name, request.value, request.lifetime, request.private
    )
