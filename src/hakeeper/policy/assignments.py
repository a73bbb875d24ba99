"""What the controller's last assignments still say, and what each action makes of them.

Nodes converge to their assignments (`hakeeper.model.records.Assignment`), so two decisions
follow from what an assignment says rather than from what the nodes report:

- **retract before move.** An exclusive primitive outside a clone starts on one node while
  its assignment still places it on another *online* node where the transition stops nothing
  (its status there may be stale, or a start may still be in flight there). `retract R on N`
  rewrites the assignment without N, and N must answer under that new epoch that it runs
  nothing; the start waits for it. The retraction waits for what the start waits for, so it
  goes out in the wave the start would have gone out in: no earlier than needed.
- **prune.** A placement on a node that is certainly down (offline, or lost and fenced) is
  written out, so a node that comes back does not start it again. Nothing waits for it and it
  waits for nothing: it goes out with the first write. A placement on a node this transition
  fences is pruned too, once the fence is done: it goes out with the starts that waited for
  the fence, in the same write. Otherwise that write placed the resource on both nodes, and
  the fenced node, rebooted before a later transition pruned it, started it again beside
  the new holder (the nemesis saw the singleton on two nodes that way).

`assignment_after` is the assignment once an action is done: the controller writes it and
the simulation applies it, so both mean the same by every action.
"""

from __future__ import annotations

from collections.abc import Iterable

from hakeeper.model.records import Assignment, Placement
from hakeeper.model.roles import PlacedRole
from hakeeper.model.transition import Action
from hakeeper.policy.view import View


def prunes(view: View) -> list[Action]:
    """A prune for every placement on a configured node that is certainly down or is fenced
    in this transition (whose prune waits for the fence: `hakeeper.policy.graph`)."""
    out: list[Action] = []
    for assignment in view.state.assignments:
        for p in assignment.placements:
            state = view.node.get(p.node)
            if state is not None and (state.down or p.node in view.fence):
                why = f"{p.node} is down: {assignment.resource} must not start there on return"
                out.append(Action("prune", p.node, assignment.resource, p.instance, why))
    return out


def retractions(view: View, start: Action, stopping: Iterable[Action]) -> list[Action]:
    """The retractions ``start`` must wait for: placements of its exclusive, non-clone
    primitive that the assignment still names on other online nodes where nothing stops."""
    resource = start.resource
    if resource is None or start.kind != "start":
        return []
    primitive = view.spec.primitive(resource)
    unit = view.units.get(view.unit_of.get(resource, ""))
    if primitive is None or unit is None or unit.clone is not None:
        return []
    if not primitive.meta.exclusive:
        return []
    assignment = view.state.assignment(resource)
    stops = {a.node for a in stopping if a.resource == resource and a.kind == "stop"}
    out: list[Action] = []
    for p in assignment.placements if assignment else ():
        if p.node == start.node or p.node in stops:
            continue
        if view.state.node(p.node).status == "online":
            why = f"still assigned to {p.node}: it must answer that it runs nothing first"
            out.append(Action("retract", p.node, resource, p.instance, why))
    return out


def assignment_after(base: Assignment | None, action: Action) -> Assignment:
    """The assignment of ``action.resource`` once ``action`` is done (level-triggered: the
    nodes converge to it). Stops, retractions and prunes remove the placement; starts and
    promotions add it (a restart keeps a primary's role); a demotion keeps it as started."""
    assert action.resource is not None, f"{action.key} has no resource to assign"
    placements = list(base.placements) if base else []
    mine = [p for p in placements if p.node == action.node and p.instance == action.instance]
    rest = [p for p in placements if p not in mine]
    if action.kind in ("stop", "retract", "prune"):
        placements = rest
    elif action.kind in ("start", "promote"):
        role: PlacedRole = "promoted" if action.kind == "promote" else "started"
        if action.kind == "start" and mine and mine[0].role == "promoted":
            role = "promoted"
        placements = [*rest, Placement(action.node, role, action.instance)]
    elif action.kind == "demote":
        placements = [*rest, Placement(action.node, "started", action.instance)]
    return Assignment(
        action.resource, tuple(sorted(placements, key=lambda p: (p.node, p.instance)))
    )
