"""The cluster as configured: nodes, resources, clones, groups, constraints, options.

Plain frozen data built by `hakeeper.config` from the cluster file (or by tests directly).
The scheduler reads it together with a `hakeeper.model.state.ClusterState` snapshot.

Names: every primitive, group and clone has an id unique across all three. Constraints
name *top-level* ids: a primitive that is in no group or clone, a group that is in no clone,
or a clone. Scores are ints (see `hakeeper.model.scores`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from hakeeper.model.alerts import AlertSpec
from hakeeper.model.roles import RoleFilter, TargetRole
from hakeeper.model.timing import TimingProfile, profile

OnFail = Literal["restart", "stop", "fence", "standby", "ignore", "block", "demote"]
NoQuorumPolicy = Literal["stop", "freeze", "demote", "ignore"]
Failback = Literal["auto", "manual"]
CoordBackend = Literal["raft", "etcd"]
OrderAction = Literal["start", "promote"]
WatchdogMode = Literal["off", "automatic", "required"]
HostArgument = Literal["auto", "port", "plug", "none"]
#: ``power``: "off" stops the whole node, its agent included (IPMI, a PDU, a hypervisor);
#: ``fabric``: it cuts the node off what it serves and leaves the node running (SCSI, a switch).
FenceKind = Literal["power", "fabric"]

ON_FAIL: tuple[OnFail, ...] = (
    "restart", "stop", "fence", "standby", "ignore", "block", "demote",
)  # fmt: skip

#: Stickiness every resource gets by default with ``failback = "manual"``: it outweighs any
#: finite location preference an operator is likely to write, and loses to ``inf`` (a move
#: from the CLI, or a ban).
MANUAL_FAILBACK_STICKINESS = 100_000

#: An operation's timeout when the cluster file gives none (Pacemaker's default).
DEFAULT_OP_TIMEOUT = 20.0

#: The event log's default bound: a year's availability window and a month more, and a count
#: that keeps the log a few tens of MiB in the coordination key space.
DEFAULT_EVENTS_MAX_AGE = 400 * 86400.0
DEFAULT_EVENTS_MAX_COUNT = 100_000


@dataclass(frozen=True, slots=True)
class Op:
    """A resource operation. ``interval`` 0 means a one-off (start, stop, promote...)."""

    name: str
    interval: float = 0.0
    timeout: float = DEFAULT_OP_TIMEOUT


@dataclass(frozen=True, slots=True)
class Meta:
    """Per-resource policy. ``stickiness`` None means the cluster default (from failback).

    ``migration_threshold`` 0 means never move for failures (Pacemaker's INFINITY);
    ``failure_timeout`` 0 means fail counts never expire on their own.

    ``on_fail = "demote"`` (a promotable clone's member only, as Pacemaker's
    ``on-fail=demote``): a failed promote, or a failed monitor of the primary that still
    finds it running, demotes the instance and leaves it running as a replica instead of
    restarting it; every other failure is recovered as ``restart`` would.
    """

    stickiness: int | None = None
    migration_threshold: int = 0
    failure_timeout: float = 0.0
    on_fail: OnFail = "restart"
    exclusive: bool = True
    priority: int = 0
    target_role: TargetRole = "started"


@dataclass(frozen=True, slots=True)
class Primitive:
    id: str
    agent: str
    params: Mapping[str, object] = field(default_factory=dict)
    ops: tuple[Op, ...] = ()
    meta: Meta = Meta()

    def op(self, name: str) -> Op | None:
        return next((op for op in self.ops if op.name == name), None)

    def op_timeout(self, name: str) -> float:
        """How long operation ``name`` may take: as configured, else the default."""
        op = self.op(name)
        return op.timeout if op is not None else DEFAULT_OP_TIMEOUT


@dataclass(frozen=True, slots=True)
class Group:
    """Members start in order on one node and stop in reverse order."""

    id: str
    members: tuple[str, ...]
    stickiness: int | None = None
    priority: int = 0
    target_role: TargetRole = "started"


@dataclass(frozen=True, slots=True)
class Clone:
    """Copies of a primitive or group. ``max`` None means one per node in the config.

    ``promotable``: one instance is the primary, the others replicas (Pacemaker's
    promotable clone with promoted-max 1).

    ``notify``: every instance gets Pacemaker's ``notify`` action (pre and post) around the
    start, stop, promote and demote of any instance (``notify=true`` meta; PAF needs it).
    """

    id: str
    child: str
    max: int | None = None
    max_per_node: int = 1
    promotable: bool = False
    stickiness: int | None = None
    priority: int = 0
    target_role: TargetRole = "started"
    notify: bool = False


@dataclass(frozen=True, slots=True)
class Location:
    """Score of ``resource`` on ``node``, or on every node whose ``attribute`` is ``value``.

    ``role = "primary"`` scores where a promotable clone's primary goes, not its replicas.
    """

    resource: str
    score: int
    node: str | None = None
    attribute: str | None = None
    value: str | None = None
    role: RoleFilter = "any"
    id: str = ""

    def matches(self, node: str, attributes: Mapping[str, str]) -> bool:
        if self.node is not None:
            return self.node == node
        return self.attribute is not None and attributes.get(self.attribute) == self.value


@dataclass(frozen=True, slots=True)
class Colocation:
    """Place ``resource`` relative to where ``with_resource`` is (``inf``: only there)."""

    resource: str
    with_resource: str
    score: int
    with_role: RoleFilter = "any"


@dataclass(frozen=True, slots=True)
class Order:
    """``first`` is started (or promoted) before ``then``; stops go the other way round."""

    first: str
    then: str
    first_action: OrderAction = "start"
    then_action: OrderAction = "start"


@dataclass(frozen=True, slots=True)
class NodeSpec:
    name: str
    address: str = "127.0.0.1"
    raft_port: int = 7480
    attributes: Mapping[str, str] = field(default_factory=dict)
    standby: bool = False
    maintenance: bool = False
    watchdog: bool = False


@dataclass(frozen=True, slots=True)
class FenceDevice:
    """A fence device as configured (Pacemaker's stonith resource, ``pcmk_*`` in plain words)."""

    name: str
    agent: str
    # Out of repr: it may hold the device's password (prefer fence-agents' passwd_script).
    params: Mapping[str, object] = field(default_factory=dict, repr=False)
    hosts: Mapping[str, str] = field(default_factory=dict)  # pcmk_host_map
    host_list: tuple[str, ...] = ()  # pcmk_host_list
    host_argument: HostArgument = "auto"  # pcmk_host_argument
    timeout: float = 60.0
    retries: int = 2
    delay_base: float = 0.0  # pcmk_delay_base
    delay_max: float = 0.0  # pcmk_delay_max
    kind: FenceKind = "power"
    prestart: bool = False  # an agent waits, started, for the next fence


@dataclass(frozen=True, slots=True)
class WatchdogSpec:
    """Patroni's modes: ``off``; ``automatic`` arms one when the device opens; ``required``
    refuses to run resources without one. Only ``required`` lets the controller count a lost
    node as self-fenced (rule 2b), since only then is the watchdog certain to be armed."""

    mode: WatchdogMode = "off"
    device: str = "/dev/watchdog"
    timeout: int | None = None  # whole seconds (Linux); None: derived from the profile


@dataclass(frozen=True, slots=True)
class Coordination:
    backend: CoordBackend = "raft"
    secret_file: str = "/etc/hakeeper/secret"
    endpoints: tuple[str, ...] = ()
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    user: str | None = None
    password_file: str | None = None


@dataclass(frozen=True, slots=True)
class ClusterOptions:
    name: str = "hakeeper"
    profile: str = "default"
    no_quorum_policy: NoQuorumPolicy = "stop"
    fencing: bool = True
    failback: Failback = "auto"
    stickiness: int | None = None
    #: The fraction every service's availability is measured against (None: no target).
    availability_target: float | None = None
    #: The event log's bound: older events, and all but the newest this many, are trimmed.
    events_max_age: float = DEFAULT_EVENTS_MAX_AGE
    events_max_count: int = DEFAULT_EVENTS_MAX_COUNT

    @property
    def default_stickiness(self) -> int:
        if self.stickiness is not None:
            return self.stickiness
        return MANUAL_FAILBACK_STICKINESS if self.failback == "manual" else 0


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    options: ClusterOptions = ClusterOptions()
    nodes: tuple[NodeSpec, ...] = ()
    primitives: tuple[Primitive, ...] = ()
    groups: tuple[Group, ...] = ()
    clones: tuple[Clone, ...] = ()
    locations: tuple[Location, ...] = ()
    colocations: tuple[Colocation, ...] = ()
    orders: tuple[Order, ...] = ()
    coordination: Coordination = Coordination()
    fence_devices: tuple[FenceDevice, ...] = ()
    #: Fencing topology: node -> levels tried in order, each a tuple of device names.
    fence_levels: Mapping[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)
    #: Every node has a required watchdog (what the scheduler may rely on).
    watchdog: bool = False
    watchdog_spec: WatchdogSpec = WatchdogSpec()
    #: Fence a member whose renewals stopped this long, before its lease runs out (None: off).
    suspect_after: float | None = None
    #: Who is told about events, and how (``[[alerts]]``).
    alerts: tuple[AlertSpec, ...] = ()
    #: ``options.profile`` resolved, once, when the spec is built (so when the config loads).
    timing: TimingProfile = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "timing", profile(self.options.profile))

    def node(self, name: str) -> NodeSpec | None:
        return next((n for n in self.nodes if n.name == name), None)

    def primitive(self, rid: str) -> Primitive | None:
        return next((p for p in self.primitives if p.id == rid), None)

    def promotable_member(self, rid: str) -> bool:
        """Whether ``rid`` is the resource of a promotable clone (which holds one resource)."""
        return any(c.child == rid and c.promotable for c in self.clones)

    def top_level(self, rid: str) -> str:
        """The id constraints use for ``rid``: its clone, else its group, else itself."""
        for group in self.groups:
            if rid in group.members:
                rid = group.id
                break
        for clone in self.clones:
            if clone.child == rid:
                return clone.id
        return rid

    def top_level_ids(self) -> tuple[str, ...]:
        inner = {m for g in self.groups for m in g.members} | {c.child for c in self.clones}
        ids = [p.id for p in self.primitives] + [g.id for g in self.groups]
        ids += [c.id for c in self.clones]
        return tuple(i for i in ids if i not in inner)
