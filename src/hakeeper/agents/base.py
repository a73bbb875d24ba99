"""The resource-agent interface: requests, results, and what an exit code means.

Every agent (``process``, ``ocf:<provider>:<type>``, ``systemd:<unit>``, ``lsb:<script>``)
answers each operation with an `OpResult`; nothing an agent runs is allowed to raise past it.
A timeout is a result too (``timed_out=True``, rc ``ERR_GENERIC``, soft), never an exception,
and the process group of a timed-out operation is killed before the result is returned.

Exit codes follow OCF 1.1 and the recovery Pacemaker applies to them (`classify`): the
severity says what the controller must do, the rc says what the agent answered.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

log = logging.getLogger("hakeeper.agents")


class OcfRc(enum.IntEnum):
    """OCF 1.1 exit codes (``ocf-returncodes``); agents answer these for every action."""

    SUCCESS = 0
    ERR_GENERIC = 1
    ERR_ARGS = 2
    ERR_UNIMPLEMENTED = 3
    ERR_PERM = 4
    ERR_INSTALLED = 5
    ERR_CONFIGURED = 6
    NOT_RUNNING = 7
    RUNNING_PROMOTED = 8
    FAILED_PROMOTED = 9
    DEGRADED = 190
    DEGRADED_PROMOTED = 191


class Severity(enum.StrEnum):
    """The recovery an operation's result calls for (Pacemaker's recovery types).

    ok: nothing to recover. soft: restart in place or move (transient). hard: move away and
    ban this node (something about this node is wrong). fatal: stop everywhere and start
    nowhere (the configuration itself is wrong).
    """

    OK = "ok"
    SOFT = "soft"
    HARD = "hard"
    FATAL = "fatal"


OPS = ("start", "stop", "monitor", "probe", "promote", "demote", "validate-all", "meta-data")

_PROMOTED = frozenset({OcfRc.RUNNING_PROMOTED, OcfRc.DEGRADED_PROMOTED})
_RUNNING = frozenset({OcfRc.SUCCESS, OcfRc.DEGRADED, *_PROMOTED})
_HARD = frozenset({OcfRc.ERR_ARGS, OcfRc.ERR_UNIMPLEMENTED, OcfRc.ERR_PERM, OcfRc.ERR_INSTALLED})


def classify(op: str, rc: int, *, recurring: bool = False) -> Severity:
    """The recovery Pacemaker applies when ``op`` answers ``rc``.

    ``op`` is one of `OPS` (``probe`` = the one-off monitor before acting); ``recurring`` is
    true for a monitor that runs on an interval. Deviations from a plain table lookup, each
    as Pacemaker does it (``unpack.c``, Pacemaker Explained "OCF Return Codes"):

    - 8/191 (promoted) are a good answer only from a monitor or probe; the executor, which
      knows the expected role, compares roles. From any other op they are unexpected: soft.
    - 7 (not running) is the answer a probe hopes for, and a stop that finds nothing is done;
      from a recurring monitor or a start it means the service is gone: soft.
    - A probe answering 2 or 5 means "not running, and cannot run here": Pacemaker masks it
      as stopped and bans the node, which is what hard means for a resource not running.
    - A recurring op answering 3 (unimplemented) causes no recovery.
    - Degraded (190/191) is success for recovery purposes.
    - Anything unknown (127 from a missing shell, a signal's 128+n) is soft.
    """
    if rc in (OcfRc.SUCCESS, OcfRc.DEGRADED):
        return Severity.OK
    if rc in _PROMOTED:
        return Severity.OK if op in ("monitor", "probe") else Severity.SOFT
    if rc == OcfRc.NOT_RUNNING:
        return Severity.OK if op in ("probe", "stop") else Severity.SOFT
    if rc == OcfRc.ERR_UNIMPLEMENTED and recurring:
        return Severity.OK
    if rc in _HARD:
        return Severity.HARD
    if rc == OcfRc.ERR_CONFIGURED:
        return Severity.FATAL
    return Severity.SOFT


def rc_name(rc: int) -> str:
    """``SUCCESS``, ``NOT_RUNNING``… or ``rc<n>`` for a code outside OCF's table."""
    try:
        return OcfRc(rc).name
    except ValueError:
        return f"rc{rc}"


@dataclass(frozen=True, slots=True)
class OpRequest:
    """What one operation is asked to do, beyond its name.

    ``timeout`` and ``interval`` are seconds (the OCF environment gets milliseconds).
    ``interval`` is 0 for a one-off op; a monitor with interval 0 is what OCF agents see as a
    probe. ``epoch`` is the fencing token of the assignment this op serves (issue 5): agents
    get it as ``HAKEEPER_EPOCH`` and ``OCF_RESKEY_CRM_meta_hakeeper_epoch``.
    """

    timeout: float
    node: str = ""
    interval: float = 0.0
    epoch: int = 0
    check_level: int = 0
    #: Meta attributes of this op alone (a notification's ``notify_*`` lists).
    meta: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ValueError(f"OpRequest.timeout must be positive seconds, got {self.timeout!r}")
        if self.interval < 0:
            raise ValueError(f"OpRequest.interval must be >= 0 seconds, got {self.interval!r}")


@dataclass(frozen=True, slots=True)
class OpResult:
    """The outcome of one operation; what the runtime logs, shows and turns into events.

    ``duration`` is seconds on the monotonic clock; ``ts`` the wall-clock end (for events).
    ``output_tail`` is the last lines of what the agent printed (bounded).
    ``promotion_score`` is the score an in-process agent asks for its node (what an OCF
    agent sets with ``crm_master -l reboot -v``); None leaves the score as it is.
    """

    op: str
    rc: int
    severity: Severity
    duration: float
    exit_reason: str = ""
    output_tail: str = ""
    timed_out: bool = False
    resource: str = ""
    interval: float = 0.0
    ts: float = field(default_factory=time.time)
    promotion_score: int | None = None

    @property
    def ok(self) -> bool:
        """No recovery needed (success, degraded, a probe that found it stopped, …)."""
        return self.severity is Severity.OK

    @property
    def running(self) -> bool:
        """Whether the answer says the resource is running here (any role)."""
        return self.rc in _RUNNING or self.rc == OcfRc.FAILED_PROMOTED

    @property
    def promoted(self) -> bool:
        """Whether a monitor or probe found the resource in the promoted role."""
        return self.rc in _PROMOTED or self.rc == OcfRc.FAILED_PROMOTED

    @property
    def rc_name(self) -> str:
        return rc_name(self.rc)

    def describe(self) -> str:
        """One line for logs and ``hakeeper status``: what ran, what it answered, why."""
        who = f"{self.op} {self.resource}" if self.resource else self.op
        if self.timed_out:
            text = f"{who}: timed out after {self.duration:.1f}s ({self.severity})"
        else:
            text = f"{who}: {self.rc_name} ({self.rc}, {self.severity}) in {self.duration:.2f}s"
        if self.exit_reason:
            text += f": {self.exit_reason}"
        return text


def make_result(
    op: str,
    rc: int,
    *,
    started: float,
    resource: str,
    interval: float = 0.0,
    exit_reason: str = "",
    output_tail: str = "",
    timed_out: bool = False,
) -> OpResult:
    """An `OpResult` classified by `classify`, with ``duration`` from ``started`` (monotonic)."""
    if timed_out:
        rc = OcfRc.ERR_GENERIC
    return OpResult(
        op=op,
        rc=int(rc),
        severity=classify(op, rc, recurring=interval > 0),
        duration=max(0.0, time.monotonic() - started),
        exit_reason=exit_reason,
        output_tail=output_tail,
        timed_out=timed_out,
        resource=resource,
        interval=interval,
    )


def log_op(result: OpResult, *, node: str = "", epoch: int = 0) -> OpResult:
    """Log one structured line per op (``event=op resource=.. op=.. rc=.. duration_ms=..``)."""
    parts = [
        "event=op",
        f"resource={result.resource}",
        f"op={result.op}",
        f"rc={result.rc}",
        f"rc_name={result.rc_name}",
        f"severity={result.severity}",
        f"duration_ms={round(result.duration * 1000)}",
        f"timed_out={'true' if result.timed_out else 'false'}",
    ]
    if result.interval:
        parts.append(f"interval_ms={round(result.interval * 1000)}")
    if node:
        parts.append(f"node={node}")
    if epoch:
        parts.append(f"epoch={epoch}")
    if result.exit_reason:
        # Quoted so the line stays one key=value record even when the reason has spaces.
        escaped = result.exit_reason.replace("\\", "\\\\").replace('"', '\\"')
        parts.append(f'reason="{escaped}"')
    level = logging.INFO if result.ok else logging.WARNING
    log.log(level, " ".join(parts))
    return result


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One instance parameter as an agent's meta-data describes it."""

    name: str
    required: bool = False
    unique: bool = False
    type: str = "string"
    default: str | None = None
    shortdesc: str = ""


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One action's advertised timing (seconds) from meta-data."""

    name: str
    timeout: float | None = None
    interval: float | None = None
    depth: int | None = None
    role: str | None = None


@dataclass(frozen=True, slots=True)
class MetaData:
    """An agent's self-description: parameters (with defaults, required) and action timings."""

    name: str
    version: str = ""
    ocf_version: str = ""
    shortdesc: str = ""
    parameters: tuple[ParamSpec, ...] = ()
    actions: tuple[ActionSpec, ...] = ()

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.parameters if p.name == name), None)

    def action(self, name: str, *, recurring: bool | None = None) -> ActionSpec | None:
        """The first advertised ``name`` action; for monitors, ``recurring`` picks by interval."""
        for spec in self.actions:
            if spec.name != name:
                continue
            if recurring is None or bool(spec.interval) == recurring:
                return spec
        return None

    def timeout(self, name: str) -> float | None:
        """The advertised timeout of ``name`` in seconds, if any."""
        spec = self.action(name)
        return spec.timeout if spec is not None else None

    def missing_required(self, given: set[str] | frozenset[str]) -> list[str]:
        return [p.name for p in self.parameters if p.required and p.name not in given]

    def with_defaults(self, given: dict[str, str]) -> dict[str, str]:
        """The effective parameters: ``given`` plus advertised defaults for the rest.

        For display and planning only: OCF agents compute their own defaults (Dummy's
        advertised default can contain the literal ``RESOURCE_ID``), so these are never
        exported to the agent.
        """
        merged = {p.name: p.default for p in self.parameters if p.default is not None}
        merged.update(given)
        return merged


@runtime_checkable
class ResourceAgent(Protocol):
    """What the local executor drives; one object per resource instance on this node.

    Every method returns an `OpResult` (and logs it); none raises for anything the agent or
    the managed service does. All actions are idempotent, as OCF requires: start of a running
    resource and stop of a stopped one answer SUCCESS.
    """

    instance: str

    async def start(self, req: OpRequest) -> OpResult: ...

    async def stop(self, req: OpRequest) -> OpResult: ...

    async def monitor(self, req: OpRequest, *, probe: bool = False) -> OpResult:
        """Check health; ``probe=True`` is the one-off check before acting (interval 0)."""
        ...

    async def promote(self, req: OpRequest) -> OpResult: ...

    async def demote(self, req: OpRequest) -> OpResult: ...

    def meta_data(self) -> MetaData: ...


def unimplemented(op: str, resource: str, why: str) -> OpResult:
    """The answer of an agent kind that has no such action (e.g. promote on ``process``)."""
    return log_op(
        make_result(
            op,
            OcfRc.ERR_UNIMPLEMENTED,
            started=time.monotonic(),
            resource=resource,
            exit_reason=why,
        )
    )
