"""From targets to actions, and the order dependencies between them.

Per node and member, instances that are failed, extra or on the wrong node are stopped
(a primary is demoted first), missing ones are started, and the elected primary is
promoted. In a group, when a member (re)starts on a node, every later member there restarts
too, as the group's order requires. Dependencies:

- ``fence N`` before every start and promote of a unit that ran on N, and before the
  prune of every placement on N;
- a non-clone resource: every stop before every start (never two copies, even briefly);
  moving between two live nodes, its stop waits for everything else its new start waits
  for (make before break: a VIP leaves only once the clone it follows runs at the target);
  a clone instance: a stop before the start on the same node (a restart);
- a group: member starts in order on each node, stops in reverse order;
- a promotable clone: every start before any promote, demote before stop, every demote
  (and stop of a failed or former primary) before any promote;
- an order constraint ``first then``: starts (or promotes) of first before those of then,
  stops of then before stops (or demotes) of first;
- a recurring monitor after the start, promote or demote it follows;
- from the assignments (`hakeeper.policy.assignments`): a retraction between a start and
  everything the start waits for; a prune on its own (it goes out with the first write),
  unless its node is fenced here (then after the fence, with the starts that waited for it).
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from itertools import pairwise

from hakeeper.model.transition import Action, ActionKind, Decision, Transition
from hakeeper.policy.assignments import prunes, retractions
from hakeeper.policy.placement import Target
from hakeeper.policy.view import Unit, View


class _Builder:
    def __init__(self, view: View) -> None:
        self.view = view
        self.actions: dict[str, Action] = {}
        self.edges: set[tuple[str, str]] = set()

    def add(
        self,
        kind: ActionKind,
        node: str,
        resource: str | None,
        inst: int,
        why: str,
        probe: bool = False,
    ) -> str:
        action = Action(kind, node, resource, inst, why, probe)
        self.actions.setdefault(action.key, action)
        return action.key

    def find(self, kind: ActionKind, resource: str, node: str | None = None) -> list[str]:
        return [
            k
            for k, a in self.actions.items()
            if a.kind == kind and a.resource == resource and (node is None or a.node == node)
        ]

    def edge(self, before: list[str], after: list[str]) -> None:
        for b in before:
            for a in after:
                if a != b:
                    self.edges.add((b, a))

    # --- actions -----------------------------------------------------------------------

    def unit(self, unit: Unit, target: Target) -> None:
        view = self.view
        if target.frozen:
            for node in view.nodes:
                for m in unit.member_ids:
                    for i, role in enumerate(view.roles(m, node)):
                        if role == "unknown" and view.node[node].status == "online":
                            self.add("monitor", node, m, i, "probe: state unknown", probe=True)
            return
        for node in view.nodes:
            if view.gone(node) or node in view.unsafe or node in view.maintenance:
                continue
            self._node(unit, target, node)

    def _node(self, unit: Unit, target: Target, node: str) -> None:
        view = self.view
        want = target.nodes.get(node, 0)
        restarting = False
        for m in unit.members:
            roles = view.roles(m.id, node)
            ignore = m.meta.on_fail == "ignore"
            healthy = [i for i, r in enumerate(roles) if r != "failed" or ignore]
            failed = [i for i, r in enumerate(roles) if r == "failed" and not ignore]
            keep = 0 if restarting else min(len(healthy), want)
            why = self._why(unit, node, want, bool(failed))
            for i in healthy[keep:]:
                if roles[i] == "promoted":
                    self.add("demote", node, m.id, i, why)
                self.add("stop", node, m.id, i, why)
            for i in failed:
                self.add("stop", node, m.id, i, f"{m.id} failed on {node}")
            starts = want - keep
            for j in range(keep, keep + starts):
                self.add("start", node, m.id, j, self._start_why(unit, node))
            if starts > 0 and len(unit.members) > 1:
                restarting = True
            kept_primary = keep > 0 and roles[healthy[0]] == "promoted"
            if keep > 0 and (m.id, node) in view.demoting:
                self._demote_failed(m.id, node, healthy[0])
            if target.primary == node and not kept_primary and want:
                self.add("promote", node, m.id, 0, f"{unit.id} primary elected on {node}")
            elif kept_primary and target.primary != node:
                self.add("demote", node, m.id, healthy[0], f"{unit.id} primary moves away")

    def _demote_failed(self, resource: str, node: str, instance: int) -> None:
        """on_fail = demote: the instance that failed as the primary stays, demoted (the
        placement goes back to a replica's, and the node's executor demotes it)."""
        why = f"{resource} failed as the primary on {node} and its on_fail is demote"
        self.add("demote", node, resource, instance, why)
        self.view.decisions.append(
            Decision(
                "demote",
                f"{why}: demoted and kept running there as a replica, not restarted",
                resource,
                node,
            )
        )

    def _why(self, unit: Unit, node: str, want: int, failed: bool) -> str:
        if failed and want:
            return f"restart of {unit.id} after a failure on {node}"
        why = self.view.can_host(node)
        if why:
            return why
        if unit.target_role == "stopped":
            return "target_role stopped"
        return f"{unit.id} placed elsewhere" if unit.clone is None else "fewer instances"

    def _start_why(self, unit: Unit, node: str) -> str:
        was = sorted(self.view.was_on.get(unit.id, ()))
        if unit.clone is None and was and node not in was:
            return f"{unit.id} moves from {was[0]}"
        return f"{unit.id} placed on {node}"

    # --- dependencies ----------------------------------------------------------------

    def dependencies(self, targets: dict[str, Target]) -> None:
        view = self.view
        for node, _why in view.fence.items():
            fence = [f"fence {node}"]
            for uid, nodes in view.was_on.items():
                if node in nodes:
                    for m in view.units[uid].member_ids:
                        self.edge(fence, self.find("start", m) + self.find("promote", m))
        for unit in view.units.values():
            ids = unit.member_ids
            for m in ids:
                if unit.clone is None:
                    self.edge(self.find("stop", m), self.find("start", m))
                else:
                    for node in view.nodes:
                        self.edge(self.find("stop", m, node), self.find("start", m, node))
                for node in view.nodes:
                    self.edge(self.find("start", m, node), self.find("promote", m, node))
                    self.edge(self.find("demote", m, node), self.find("stop", m, node))
                if unit.promotable:
                    promotes = self.find("promote", m)
                    self.edge(self.find("demote", m), promotes)
                    # As Pacemaker: the clone is up before one is promoted, so the scores
                    # its agents set while starting (PAF's on the former primary) count.
                    self.edge(self.find("start", m), promotes)
                    for node in view.nodes:
                        # A primary that failed or is demoting may still act as one.
                        if {"promoted", "failed"} & set(view.roles(m, node)) or (
                            (m, node) in view.demoting
                        ):
                            self.edge(self.find("stop", m, node), promotes)
            for first, then in pairwise(ids):
                for node in view.nodes:
                    self.edge(self.find("start", first, node), self.find("start", then, node))
                    self.edge(self.find("stop", then, node), self.find("stop", first, node))
        for order in view.spec.orders:
            f_unit, t_unit = view.units.get(order.first), view.units.get(order.then)
            if f_unit is None or t_unit is None:
                continue
            f_up: ActionKind = "promote" if order.first_action == "promote" else "start"
            f_down: ActionKind = "demote" if order.first_action == "promote" else "stop"
            t_up: ActionKind = "promote" if order.then_action == "promote" else "start"
            t_down: ActionKind = "demote" if order.then_action == "promote" else "stop"
            for fm in f_unit.member_ids:
                for tm in t_unit.member_ids:
                    self.edge(self.find(f_up, fm), self.find(t_up, tm))
                    self.edge(self.find(t_down, tm), self.find(f_down, fm))
        self._make_before_break()
        for unit in view.units.values():
            for prim in unit.members:
                op = prim.op("monitor")
                if op is None or op.interval <= 0:
                    continue
                changed: dict[tuple[str, int], list[str]] = defaultdict(list)
                for key, a in self.actions.items():
                    if a.resource == prim.id and a.kind in ("start", "promote", "demote"):
                        changed[(a.node, a.instance)].append(key)
                for (node, inst), keys in sorted(changed.items()):
                    started = any(self.actions[k].kind == "start" for k in keys) or any(
                        r != "failed" for r in view.roles(prim.id, node)[inst : inst + 1]
                    )
                    if started:
                        mon = self.add("monitor", node, prim.id, inst, f"every {op.interval:g}s")
                        self.edge(keys, [mon])

    def _make_before_break(self) -> None:
        """A resource moving between two live nodes keeps running on the old one until
        everything its new start waits for (other than its own stop) is done: a VIP that
        follows a clone instance moves only once that instance is up on the new node.
        An edge that would close a cycle (a group moving as a whole) is left out."""
        before: dict[str, set[str]] = defaultdict(set)
        for b, a in self.edges:
            before[a].add(b)
        for key, action in list(self.actions.items()):
            if action.kind != "start" or action.resource is None:
                continue
            own_stops = [
                k for k in self.find("stop", action.resource) if self.actions[k].node != action.node
            ]
            if not own_stops:
                continue
            needs = [b for b in before[key] if self.actions[b].kind != "stop"]
            for stop in own_stops:
                for need in needs:
                    if not self._reaches(stop, need):
                        self.edges.add((need, stop))

    def retract(self) -> None:
        """Each retraction goes between its start and what the start waits for, so it is
        dispatched in the start's place and the start waits for its answer."""
        before: dict[str, set[str]] = defaultdict(set)
        for b, a in self.edges:
            before[a].add(b)
        stops = [a for a in self.actions.values() if a.kind == "stop"]
        for key, action in list(self.actions.items()):
            for r in retractions(self.view, action, stops):
                retract = self.add(r.kind, r.node, r.resource, r.instance, r.reason)
                self.edge(sorted(before[key]), [retract])
                self.edge([retract], [key])

    def _reaches(self, start: str, goal: str) -> bool:
        after: dict[str, list[str]] = defaultdict(list)
        for b, a in self.edges:
            after[b].append(a)
        seen, todo = {start}, [start]
        while todo:
            for nxt in after[todo.pop()]:
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    def finish(self) -> Transition:
        keys = sorted(self.actions, key=lambda k: self.actions[k].sort_key())
        indegree = dict.fromkeys(keys, 0)
        after: dict[str, list[str]] = defaultdict(list)
        for b, a in self.edges:
            indegree[a] += 1
            after[b].append(a)
        rank = {k: i for i, k in enumerate(keys)}
        heap = [rank[k] for k in keys if indegree[k] == 0]
        heapq.heapify(heap)
        ordered: list[str] = []
        while heap:
            key = keys[heapq.heappop(heap)]
            ordered.append(key)
            for nxt in after[key]:
                indegree[nxt] -= 1
                if indegree[nxt] == 0:
                    heapq.heappush(heap, rank[nxt])
        if len(ordered) != len(keys):
            stuck = sorted(set(keys) - set(ordered))
            raise AssertionError(f"dependency cycle among {stuck}")
        pos = {k: i for i, k in enumerate(ordered)}
        edges = tuple(sorted((pos[b], pos[a]) for b, a in self.edges))
        return Transition(
            tuple(self.actions[k] for k in ordered), edges, tuple(self.view.decisions)
        )


def build(view: View, targets: dict[str, Target]) -> Transition:
    builder = _Builder(view)
    for node, why in sorted(view.fence.items()):
        builder.add("fence", node, None, 0, why)
    for p in prunes(view):
        prune = builder.add(p.kind, p.node, p.resource, p.instance, p.reason)
        if p.node in view.fence:
            builder.edge([f"fence {p.node}"], [prune])
    for uid in sorted(targets):
        builder.unit(view.units[uid], targets[uid])
    builder.dependencies(targets)
    builder.retract()
    return builder.finish()
