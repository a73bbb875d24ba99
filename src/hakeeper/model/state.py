"""What the cluster observed: one immutable snapshot the scheduler decides from.

The JSON form (``hakeeper plan --state FILE``, the ``[state]`` table of a scenario) is::

    {
      "now": 1700000000.0,               # Unix seconds; fail-count expiry is measured from it
      "quorum": true,
      "nodes": {"n1": {"status": "online", "standby": false, "maintenance": false,
                       "fenced": false, "attributes": {"rack": "a"}}},
      "instances": [{"resource": "web", "node": "n1", "role": "started"}],
      "failcounts": [{"resource": "web", "node": "n1", "count": 2,
                      "last_failure": 1699999990.0}],
      "promotion_scores": {"db": {"n1": 10, "n2": 5}},
      "constraints": [{"kind": "ban", "resource": "web", "node": "n1"},
                      {"kind": "move", "resource": "web", "node": "n2"}],
      "assignments": [{"resource": "web", "epoch": 42,
                       "placements": [{"node": "n1", "role": "started", "instance": 0}]}]
    }

Node ``status``: ``online`` (a live member), ``offline`` (cleanly down: nothing runs there),
``lost`` (vanished: its lease expired, and what it ran may still run until it is fenced).
``fenced`` is true once a fence device confirmed a lost node off. Nodes of the config that
the snapshot omits are ``offline``. ``standby``/``maintenance`` here are the run-time flags
set from the CLI; they add to those in the config.

Instance ``role``: ``started``, ``promoted`` (primary of a promotable clone), ``stopped``,
``failed`` (a monitor or start failed; the fail count already includes it), ``unknown``
(not probed yet). A ``failed`` instance may say ``"stop_failed": true`` (it failed in a stop:
it may still run) or ``"demotable": true`` (it failed as the primary, in its promote or a
monitor, and may run on as a replica: ``on_fail = "demote"`` demotes it). ``resource`` is
always a primitive id; a clone instance names the clone's primitive, and two entries for the
same resource and node are two instances.

``assignments``: what the controller last wrote for each primitive — where its instances
should run (``role`` ``started`` or ``promoted``, default ``started``; ``instance`` default 0)
and the write's ``epoch`` (optional, default 0). They can differ from ``instances`` while a
node has not answered yet; the scheduler retracts and prunes from them. At most one
assignment per resource.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

from hakeeper.errors import ConfigError
from hakeeper.model.records import Assignment, Placement
from hakeeper.model.roles import INSTANCE_ROLES, PLACED_ROLES, InstanceRole, PlacedRole

NodeStatus = Literal["online", "offline", "lost"]
RuntimeKind = Literal["move", "ban"]
RUNTIME_KINDS: tuple[RuntimeKind, ...] = ("move", "ban")

NODE_STATUSES: tuple[NodeStatus, ...] = ("online", "offline", "lost")


@dataclass(frozen=True, slots=True)
class NodeState:
    name: str
    status: NodeStatus = "online"
    fenced: bool = False
    standby: bool = False
    maintenance: bool = False
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def unclean(self) -> bool:
        """Lost and not confirmed off: what it ran may still be running."""
        return self.status == "lost" and not self.fenced

    @property
    def down(self) -> bool:
        """Certainly running nothing: offline, or lost and fenced."""
        return self.status == "offline" or (self.status == "lost" and self.fenced)


@dataclass(frozen=True, slots=True)
class Instance:
    resource: str
    node: str
    role: InstanceRole = "started"
    #: Failed in a stop: it may still run there, and only fencing makes that certain.
    stop_failed: bool = False
    #: Failed as the primary (its promote, or a monitor of the primary that did not find
    #: it stopped): with ``on_fail = "demote"`` it is demoted and kept as a replica.
    demotable: bool = False


@dataclass(frozen=True, slots=True)
class FailCount:
    resource: str
    node: str
    count: int
    last_failure: float

    def expired(self, failure_timeout: float, now: float) -> bool:
        return failure_timeout > 0 and now - self.last_failure >= failure_timeout


@dataclass(frozen=True, slots=True)
class RuntimeConstraint:
    """Made from the CLI: ``move`` is a location ``inf`` on the node, ``ban`` a ``-inf``."""

    kind: RuntimeKind
    resource: str
    node: str


@dataclass(frozen=True, slots=True)
class ClusterState:
    now: float = 0.0
    quorum: bool = True
    nodes: tuple[NodeState, ...] = ()
    instances: tuple[Instance, ...] = ()
    failcounts: tuple[FailCount, ...] = ()
    promotion_scores: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    constraints: tuple[RuntimeConstraint, ...] = ()
    assignments: tuple[Assignment, ...] = ()

    def node(self, name: str) -> NodeState:
        """The node's state; a node the snapshot does not mention is offline."""
        found = next((n for n in self.nodes if n.name == name), None)
        return found if found is not None else NodeState(name, status="offline")

    def assignment(self, resource: str) -> Assignment | None:
        """The controller's last assignment of ``resource``; None if it never wrote one."""
        return next((a for a in self.assignments if a.resource == resource), None)

    def with_node(self, node: NodeState) -> ClusterState:
        others = tuple(n for n in self.nodes if n.name != node.name)
        return replace(self, nodes=tuple(sorted((*others, node), key=lambda n: n.name)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "now": self.now,
            "quorum": self.quorum,
            "nodes": {
                n.name: {
                    "status": n.status,
                    "fenced": n.fenced,
                    "standby": n.standby,
                    "maintenance": n.maintenance,
                    "attributes": dict(n.attributes),
                }
                for n in self.nodes
            },
            "instances": [
                {"resource": i.resource, "node": i.node, "role": i.role}
                | ({"stop_failed": True} if i.stop_failed else {})
                | ({"demotable": True} if i.demotable else {})
                for i in self.instances
            ],
            "failcounts": [
                {
                    "resource": f.resource,
                    "node": f.node,
                    "count": f.count,
                    "last_failure": f.last_failure,
                }
                for f in self.failcounts
            ],
            "promotion_scores": {r: dict(s) for r, s in self.promotion_scores.items()},
            "constraints": [
                {"kind": c.kind, "resource": c.resource, "node": c.node} for c in self.constraints
            ],
            "assignments": [
                {
                    "resource": a.resource,
                    "epoch": a.epoch,
                    "placements": [
                        {"node": p.node, "role": p.role, "instance": p.instance}
                        for p in a.placements
                    ],
                }
                for a in self.assignments
            ],
        }


# --- parsing the JSON form -------------------------------------------------------------


class _Reader:
    """Typed access to a decoded JSON/TOML document; errors name the source and key path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {where}: {message}")

    def table(self, value: object, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a table/object, got {type(value).__name__}")
        return cast(dict[str, Any], value)

    def array(self, value: object, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list, got {type(value).__name__}")
        return value

    def keys(self, data: dict[str, Any], where: str, allowed: tuple[str, ...]) -> None:
        for key in data:
            if key not in allowed:
                raise self.fail(
                    f"{where}.{key}" if where else key,
                    f"unknown key (known: {', '.join(allowed)})",
                )

    def string(self, data: dict[str, Any], key: str, where: str) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value:
            raise self.fail(f"{where}.{key}", "required, a non-empty string")
        return value

    def boolean(self, data: dict[str, Any], key: str, where: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(f"{where}.{key}", f"{value!r} is not true or false")
        return value

    def number(self, value: object, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(where, f"{value!r} is not a number")
        if not math.isfinite(value):
            raise self.fail(where, "must be finite")
        return float(value)

    def integer(self, value: object, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"{value!r} is not an integer")
        return value

    def choice(self, value: object, where: str, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            raise self.fail(where, f"{value!r} is not one of {', '.join(allowed)}")
        return str(value)


def state_from_dict(data: object, source: str = "state") -> ClusterState:
    """Build a snapshot from its JSON form; ConfigError names the key and what to write."""
    r = _Reader(source)
    doc = r.table(data, "(top level)")
    r.keys(
        doc,
        "",
        (
            "now",
            "quorum",
            "nodes",
            "instances",
            "failcounts",
            "promotion_scores",
            "constraints",
            "assignments",
        ),
    )
    now = r.number(doc.get("now", 0.0), "now")
    quorum = r.boolean(doc, "quorum", "(top level)", True)
    nodes: list[NodeState] = []
    for name, raw in sorted(r.table(doc.get("nodes", {}), "nodes").items()):
        where = f"nodes.{name}"
        nd = r.table(raw, where)
        r.keys(nd, where, ("status", "fenced", "standby", "maintenance", "attributes"))
        attrs = r.table(nd.get("attributes", {}), f"{where}.attributes")
        for key, val in attrs.items():
            if not isinstance(val, str):
                raise r.fail(f"{where}.attributes.{key}", f"{val!r} is not a string")
        nodes.append(
            NodeState(
                name=name,
                status=cast(
                    NodeStatus,
                    r.choice(nd.get("status", "online"), f"{where}.status", NODE_STATUSES),
                ),
                fenced=r.boolean(nd, "fenced", where, False),
                standby=r.boolean(nd, "standby", where, False),
                maintenance=r.boolean(nd, "maintenance", where, False),
                attributes=dict(attrs),
            )
        )
    instances: list[Instance] = []
    for i, raw in enumerate(r.array(doc.get("instances", []), "instances")):
        where = f"instances[{i}]"
        it = r.table(raw, where)
        r.keys(it, where, ("resource", "node", "role", "stop_failed", "demotable"))
        role = cast(
            InstanceRole, r.choice(it.get("role", "started"), f"{where}.role", INSTANCE_ROLES)
        )
        stop_failed = r.boolean(it, "stop_failed", where, False)
        if stop_failed and role != "failed":
            raise r.fail(f"{where}.stop_failed", 'only a "failed" instance can have failed a stop')
        demotable = r.boolean(it, "demotable", where, False)
        if demotable and (role != "failed" or stop_failed):
            raise r.fail(
                f"{where}.demotable",
                'only a "failed" instance that failed as the primary (not in a stop) is demotable',
            )
        instances.append(
            Instance(
                r.string(it, "resource", where),
                r.string(it, "node", where),
                role,
                stop_failed,
                demotable,
            )
        )
    failcounts: list[FailCount] = []
    for i, raw in enumerate(r.array(doc.get("failcounts", []), "failcounts")):
        where = f"failcounts[{i}]"
        fc = r.table(raw, where)
        r.keys(fc, where, ("resource", "node", "count", "last_failure"))
        count = r.integer(fc.get("count", 1), f"{where}.count")
        if count < 0:
            raise r.fail(f"{where}.count", "must be 0 or more")
        failcounts.append(
            FailCount(
                r.string(fc, "resource", where),
                r.string(fc, "node", where),
                count,
                r.number(fc.get("last_failure", now), f"{where}.last_failure"),
            )
        )
    scores: dict[str, dict[str, int]] = {}
    for res, raw in sorted(r.table(doc.get("promotion_scores", {}), "promotion_scores").items()):
        per_node = r.table(raw, f"promotion_scores.{res}")
        scores[res] = {
            n: r.integer(v, f"promotion_scores.{res}.{n}") for n, v in sorted(per_node.items())
        }
    constraints: list[RuntimeConstraint] = []
    for i, raw in enumerate(r.array(doc.get("constraints", []), "constraints")):
        where = f"constraints[{i}]"
        rc = r.table(raw, where)
        r.keys(rc, where, ("kind", "resource", "node"))
        kind = cast(RuntimeKind, r.choice(rc.get("kind"), f"{where}.kind", RUNTIME_KINDS))
        constraints.append(
            RuntimeConstraint(kind, r.string(rc, "resource", where), r.string(rc, "node", where))
        )
    return ClusterState(
        now=now,
        quorum=quorum,
        nodes=tuple(nodes),
        instances=tuple(instances),
        failcounts=tuple(failcounts),
        promotion_scores=scores,
        constraints=tuple(constraints),
        assignments=_assignments(r, doc.get("assignments", [])),
    )


def _assignments(r: _Reader, raw: object) -> tuple[Assignment, ...]:
    out: dict[str, Assignment] = {}
    for i, entry in enumerate(r.array(raw, "assignments")):
        where = f"assignments[{i}]"
        doc = r.table(entry, where)
        r.keys(doc, where, ("resource", "epoch", "placements"))
        resource = r.string(doc, "resource", where)
        if resource in out:
            raise r.fail(f"{where}.resource", f"{resource!r} has an assignment already: merge them")
        epoch = r.integer(doc.get("epoch", 0), f"{where}.epoch")
        if epoch < 0:
            raise r.fail(f"{where}.epoch", "must be 0 or more")
        placements: list[Placement] = []
        for j, item in enumerate(r.array(doc.get("placements", []), f"{where}.placements")):
            at = f"{where}.placements[{j}]"
            pl = r.table(item, at)
            r.keys(pl, at, ("node", "role", "instance"))
            role = cast(PlacedRole, r.choice(pl.get("role", "started"), f"{at}.role", PLACED_ROLES))
            instance = r.integer(pl.get("instance", 0), f"{at}.instance")
            if instance < 0:
                raise r.fail(f"{at}.instance", "must be 0 or more")
            placements.append(Placement(r.string(pl, "node", at), role, instance))
        out[resource] = Assignment(resource, tuple(placements), epoch)
    return tuple(out[name] for name in sorted(out))
