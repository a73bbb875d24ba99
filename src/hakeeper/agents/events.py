"""Turn an operation's `OpResult` into the event-log records the model defines.

The runtime calls `op_events` after each op and appends what it returns. Mapping (rules of
``hakeeper.model.events``): a successful start → ``resource.started``; a successful stop →
``resource.stopped``; promote/demote → stopped+started at the same ``ts`` with the roles
swapped; a failed start, promote, demote or recurring monitor → ``resource.failed``.
Successful monitors and all probes write nothing (the controller decides what a probe means).
A failed stop writes nothing either: the model's ``resource.failed`` promises "not running",
which a failed stop cannot promise — the controller escalates (fencing) instead.
"""

from __future__ import annotations

from hakeeper.agents.base import OpResult
from hakeeper.model.events import Event, ResourceFailed, ResourceStarted, ResourceStopped
from hakeeper.model.roles import EventRole

_AFTER: dict[str, EventRole] = {"promote": "primary", "demote": "replica"}


def op_events(
    result: OpResult, *, node: str, role: EventRole = "started", reason: str = ""
) -> list[Event]:
    """Events for ``result`` of the instance on ``node`` that had (or, for start, takes) ``role``.

    ``role`` is ``"started"`` for a plain resource or clone instance, ``"replica"`` or
    ``"primary"`` for a promotable clone instance. ``reason`` is why a stop was asked for
    (``move``, ``standby``, ``shutdown``…).
    """
    ts = result.ts
    name = result.resource
    if result.op == "probe" or (result.op == "monitor" and result.ok):
        return []
    if result.op == "stop":
        if not result.ok:
            return []
        return [
            ResourceStopped(ts=ts, resource=name, node=node, role=role, reason=reason or "stop")
        ]
    if not result.ok:
        return [
            ResourceFailed(ts=ts, resource=name, node=node, role=role, reason=result.describe())
        ]
    if result.op == "start":
        return [ResourceStarted(ts=ts, resource=name, node=node, role=role)]
    if result.op in _AFTER:
        return [
            ResourceStopped(ts=ts, resource=name, node=node, role=role, reason=result.op),
            ResourceStarted(ts=ts, resource=name, node=node, role=_AFTER[result.op]),
        ]
    return []
