"""The cluster event log: what happened, when, as plain data.

The runtime (agent and controller) appends one event per line to the log under
``/hakeeper/<cluster>/events/``; ``hakeeper events`` prints it in the same form, and
``hakeeper availability report --events FILE.jsonl`` reads it. Each line is one JSON object
with a ``kind`` string, a ``ts`` (Unix seconds, float, wall clock of the writer) and the
fields of that kind. Unknown keys are an error, so a typo in a writer is caught by the first
reader rather than silently dropped.

=====================  ==============================================================  ====
kind                   fields (besides ``kind`` and ``ts``)                            who
=====================  ==============================================================  ====
``node.joined``        ``node``                                                        ctl
``node.lost``          ``node``, ``reason`` (``lease_expired``, ``left``, ...)         ctl
``node.fenced``        ``node``, ``device``, ``duration`` (s, fence request→confirm),  ctl
                       ``ok`` (bool; false = fencing failed, node state unknown)
``resource.started``   ``resource``, ``node``, ``role``                                node
``resource.stopped``   ``resource``, ``node``, ``role``, ``reason``                    node
``resource.failed``    ``resource``, ``node``, ``role``, ``reason``                    node
``failover.started``   ``resource``, ``from_node``, ``reason``                         ctl
``failover.finished``  ``resource``, ``from_node``, ``to_node``, ``duration`` (s)       ctl
``quorum.lost``        ``members_up``, ``members_total``                               ctl
``quorum.regained``    ``members_up``, ``members_total``                               ctl
``controller.elected`` ``node``, ``term`` (the controller lease's create revision)     ctl
``config.refused``     ``node``, ``revision`` (of the stored config), ``reason``: the    node
                       node keeps running its last good config
``alert.delivered``    ``alert`` (its id), ``event_kind``, ``revision`` (of the event), ctl
                       ``recipient``, ``attempts``
``alert.failed``       the same and ``reason``; neither is itself alerted on            ctl
``backup.created``     ``backup_id``, ``bytes``, ``seconds``, ``revision`` (coordination)   ctl
``drill.finished``     ``backup_id``, ``ok``, ``rto`` (s, restore start→service       ctl
                       answers), ``rpo`` (s, the backup's age), ``reason``
``job.failed``         ``job`` (``backup``, ``drill``), ``reason``                     ctl
``job.overdue``        ``job``, ``age`` (s since its last success or its schedule)      ctl
``operator.action``    ``actor`` (token name or certificate CN), ``action``            api
                       (``resource.move``...), ``target``, ``node`` (the API's node)
=====================  ==============================================================  ====

Rules the writers follow, and that ``hakeeper.availability.measure`` relies on:

- ``role`` is ``"started"`` for a plain resource or clone instance, ``"primary"`` or
  ``"replica"`` for an instance of a promotable clone. A promotion is written as
  ``resource.stopped`` (role replica, reason ``promote``) then ``resource.started`` (role
  primary) at the same ``ts``.
- ``resource.started`` is written when the start operation succeeded (the instance serves),
  ``resource.stopped`` when a stop succeeded (planned: move, standby, shutdown, promotion),
  ``resource.failed`` when a monitor or start failed or the instance died. After ``failed``
  the instance is not running; a later recovery is a new ``resource.started``.
- ``node.lost`` and ``node.fenced`` end every instance on that node: a reader must not wait
  for ``resource.stopped`` from a node that is gone (it cannot write any).
- ``failover.started`` is written when the controller decides to move an exclusive resource
  because its node or instance failed; ``failover.finished`` when the new instance started.
  ``duration`` is measured by the controller from the detected failure (lease expiry or
  failed monitor) to the successful start, on its monotonic clock: it includes fencing.
- ``quorum.lost``/``quorum.regained`` are written by whichever node observes the change;
  ``members_up`` counts the voting members reachable at that moment.
- Events are appended in ``ts`` order per writer; readers sort by ``ts`` (stable).

Only the standard library: this module is plain data and has no I/O; reading and writing
files is the caller's business (``parse_lines`` takes any iterable of strings).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, ClassVar

from hakeeper.errors import ConfigError
from hakeeper.model.roles import EVENT_ROLES, EventRole


@dataclass(frozen=True, slots=True)
class NodeJoined:
    kind: ClassVar[str] = "node.joined"
    ts: float
    node: str


@dataclass(frozen=True, slots=True)
class NodeLost:
    kind: ClassVar[str] = "node.lost"
    ts: float
    node: str
    reason: str = "lease_expired"


@dataclass(frozen=True, slots=True)
class NodeFenced:
    kind: ClassVar[str] = "node.fenced"
    ts: float
    node: str
    device: str
    duration: float
    ok: bool = True


@dataclass(frozen=True, slots=True)
class ResourceStarted:
    kind: ClassVar[str] = "resource.started"
    ts: float
    resource: str
    node: str
    role: EventRole = "started"


@dataclass(frozen=True, slots=True)
class ResourceStopped:
    kind: ClassVar[str] = "resource.stopped"
    ts: float
    resource: str
    node: str
    role: EventRole = "started"
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ResourceFailed:
    kind: ClassVar[str] = "resource.failed"
    ts: float
    resource: str
    node: str
    role: EventRole = "started"
    reason: str = ""


@dataclass(frozen=True, slots=True)
class FailoverStarted:
    kind: ClassVar[str] = "failover.started"
    ts: float
    resource: str
    from_node: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class FailoverFinished:
    kind: ClassVar[str] = "failover.finished"
    ts: float
    resource: str
    from_node: str
    to_node: str
    duration: float


@dataclass(frozen=True, slots=True)
class QuorumLost:
    kind: ClassVar[str] = "quorum.lost"
    ts: float
    members_up: int
    members_total: int


@dataclass(frozen=True, slots=True)
class QuorumRegained:
    kind: ClassVar[str] = "quorum.regained"
    ts: float
    members_up: int
    members_total: int


@dataclass(frozen=True, slots=True)
class ControllerElected:
    kind: ClassVar[str] = "controller.elected"
    ts: float
    node: str
    term: int


@dataclass(frozen=True, slots=True)
class ConfigRefused:
    kind: ClassVar[str] = "config.refused"
    ts: float
    node: str
    revision: int
    reason: str


@dataclass(frozen=True, slots=True)
class AlertDelivered:
    kind: ClassVar[str] = "alert.delivered"
    ts: float
    alert: str
    event_kind: str
    revision: int
    recipient: str = ""
    attempts: int = 1


@dataclass(frozen=True, slots=True)
class AlertFailed:
    kind: ClassVar[str] = "alert.failed"
    ts: float
    alert: str
    event_kind: str
    revision: int
    reason: str
    recipient: str = ""
    attempts: int = 1


@dataclass(frozen=True, slots=True)
class BackupCreated:
    kind: ClassVar[str] = "backup.created"
    ts: float
    backup_id: str
    bytes: int
    seconds: float
    revision: int


@dataclass(frozen=True, slots=True)
class DrillFinished:
    kind: ClassVar[str] = "drill.finished"
    ts: float
    backup_id: str
    ok: bool
    rto: float
    rpo: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class JobFailed:
    kind: ClassVar[str] = "job.failed"
    ts: float
    job: str
    reason: str


@dataclass(frozen=True, slots=True)
class JobOverdue:
    kind: ClassVar[str] = "job.overdue"
    ts: float
    job: str
    age: float


@dataclass(frozen=True, slots=True)
class OperatorAction:
    kind: ClassVar[str] = "operator.action"
    ts: float
    actor: str
    action: str
    target: str
    node: str


Event = (
    NodeJoined
    | NodeLost
    | NodeFenced
    | ResourceStarted
    | ResourceStopped
    | ResourceFailed
    | FailoverStarted
    | FailoverFinished
    | QuorumLost
    | QuorumRegained
    | ControllerElected
    | ConfigRefused
    | AlertDelivered
    | AlertFailed
    | BackupCreated
    | DrillFinished
    | JobFailed
    | JobOverdue
    | OperatorAction
)

EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        NodeJoined,
        NodeLost,
        NodeFenced,
        ResourceStarted,
        ResourceStopped,
        ResourceFailed,
        FailoverStarted,
        FailoverFinished,
        QuorumLost,
        QuorumRegained,
        ControllerElected,
        ConfigRefused,
        AlertDelivered,
        AlertFailed,
        BackupCreated,
        DrillFinished,
        JobFailed,
        JobOverdue,
        OperatorAction,
    )
}

# JSON has one number type; these are the Python types each annotation accepts from it.
_ACCEPTS: dict[str, tuple[type, ...]] = {
    "float": (int, float),
    "int": (int,),
    "str": (str,),
    "bool": (bool,),
    "EventRole": (str,),
}


def to_dict(event: Event) -> dict[str, Any]:
    """The event as a JSON-ready dict, ``kind`` first."""
    return {"kind": event.kind, **asdict(event)}


def to_json(event: Event) -> str:
    """One line of the event log (no trailing newline)."""
    return json.dumps(to_dict(event), separators=(",", ":"), allow_nan=False)


def from_dict(data: dict[str, Any], where: str = "event") -> Event:
    """Build an event from a decoded JSON object; `where` names the line in errors."""
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in EVENT_TYPES:
        known = ", ".join(sorted(EVENT_TYPES))
        raise ConfigError(f"{where}: unknown event kind {kind!r}; use one of: {known}")
    cls = EVENT_TYPES[kind]
    wanted = {f.name: f for f in fields(cls)}
    extra = sorted(set(data) - set(wanted) - {"kind"})
    if extra:
        raise ConfigError(
            f"{where}: {kind} has no field(s) {', '.join(extra)}; "
            f"its fields are {', '.join(wanted)}"
        )
    values: dict[str, Any] = {}
    for name, field in wanted.items():
        if name not in data:
            if field.default is not MISSING:  # has a default: optional
                continue
            raise ConfigError(f"{where}: {kind} needs field {name!r}")
        value = data[name]
        accepted = _ACCEPTS[str(field.type)]
        # bool is an int in Python, but true is never a valid timestamp or term.
        if (isinstance(value, bool) and bool not in accepted) or not isinstance(value, accepted):
            raise ConfigError(
                f"{where}: {kind}.{name} must be {field.type}, got {type(value).__name__} {value!r}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}: {kind}.{name} must be a finite number")
        # An integer timestamp in JSON is still a float field: normalise it.
        values[name] = float(value) if isinstance(value, int) and field.type == "float" else value
    if "role" in values and values["role"] not in EVENT_ROLES:
        raise ConfigError(
            f"{where}: role {values['role']!r} is not one of {', '.join(EVENT_ROLES)}"
        )
    return cls(**values)


def from_json(line: str, where: str = "event") -> Event:
    """Parse one line of the event log."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: each line must be a JSON object, got {type(data).__name__}")
    return from_dict(data, where)


def parse_lines(lines: Iterable[str], source: str = "events") -> Iterator[Event]:
    """Parse a JSON-lines log; blank lines and lines starting with ``#`` are skipped.

    Errors name ``source:line``, so a bad line in a long log can be found.
    """
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        yield from_json(text, f"{source}:{number}")


def sort_events(events: Iterable[Event]) -> list[Event]:
    """Events in time order; ties keep their log order (writers order same-ts events)."""
    return sorted(events, key=lambda event: event.ts)
