"""Where each unit runs: scores per node, then the best node (or nodes, for a clone).

Score of a unit on a node = saturating sum of: ``-inf`` if the node cannot host (offline,
lost, being fenced, standby, maintenance); location constraints (config, then CLI move/ban);
``-inf`` where a member reached its ``migration_threshold`` (fail counts that expired by
``failure_timeout`` were already dropped); the unit's stickiness on the node it runs on;
colocation with units placed before it. A node with a negative score cannot run the unit.

Units are placed in colocation order (a unit after the units it is colocated with), then by
``priority`` (higher first), then by id. Ties between nodes go to the node the unit runs on,
then the node with the fewest instances placed so far (spreading), then config order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hakeeper.model.scores import INF, add, format_score
from hakeeper.model.transition import Decision, DecisionKind
from hakeeper.policy.promotion import current_primaries, elect
from hakeeper.policy.view import Unit, View

Parts = list[tuple[int, str]]


@dataclass
class Target:
    """Where a unit should be after the transition."""

    unit: Unit
    nodes: dict[str, int] = field(default_factory=dict)
    primary: str | None = None
    frozen: bool = False

    def hosts(self, view: View, role: str = "any") -> set[str]:
        if self.frozen:
            if role == "primary":
                return set(current_primaries(view, self.unit))
            return {n for n in view.nodes if any(view.roles(m, n) for m in self.unit.member_ids)}
        if role == "primary":
            return {self.primary} if self.primary else set()
        return {n for n, c in self.nodes.items() if c > 0}

    @property
    def running(self) -> bool:
        return self.frozen or any(c > 0 for c in self.nodes.values())


def placement_order(view: View) -> list[Unit]:
    deps: dict[str, set[str]] = {u: set() for u in view.units}
    for col in view.spec.colocations:
        if col.resource in deps and col.with_resource in deps:
            deps[col.resource].add(col.with_resource)
    done: list[Unit] = []
    placed: set[str] = set()
    pending = sorted(view.units.values(), key=lambda u: (-u.priority, u.id))
    while pending:
        ready = [u for u in pending if deps[u.id] <= placed] or pending[:1]
        unit = ready[0]
        done.append(unit)
        placed.add(unit.id)
        pending.remove(unit)
    return done


def node_scores(
    view: View, unit: Unit, targets: dict[str, Target], load: dict[str, int]
) -> dict[str, tuple[int, Parts]]:
    live = view.live(unit)
    out: dict[str, tuple[int, Parts]] = {}
    for node in view.nodes:
        parts: Parts = []
        why = view.can_host(node)
        if why:
            parts.append((-INF, why))
        parts += view.score_of_location(unit, node)
        for member in unit.members:
            threshold = member.meta.migration_threshold
            count = view.failcount(member.id, node)
            if threshold and count >= threshold:
                parts.append(
                    (
                        -INF,
                        f"{member.id} failed {count}x on {node} (migration_threshold {threshold})",
                    )
                )
            elif unit.clone and member.meta.on_fail == "stop" and count:
                parts.append((-INF, f"{member.id} failed on {node} and its on_fail is stop"))
        if node in live and unit.stickiness:
            parts.append((unit.stickiness, "stickiness"))
        for col in view.spec.colocations:
            target = targets.get(col.with_resource)
            if col.resource != unit.id or target is None:
                continue
            on = node in target.hosts(view, col.with_role)
            what = col.with_resource + (" primary" if col.with_role == "primary" else "")
            if col.score >= INF and not on:
                parts.append((-INF, f"colocated with {what}, which is not on {node}"))
            elif col.score <= -INF and on:
                parts.append((-INF, f"kept apart from {what}, which is on {node}"))
            elif -INF < col.score < INF and on:
                parts.append((col.score, f"colocation with {what}"))
        out[node] = (add(0, *(s for s, _ in parts)), parts)
    return out


def _why_not(scores: dict[str, tuple[int, Parts]], node: str) -> str:
    score, parts = scores[node]
    bad = [label for s, label in parts if s <= -INF] or [label for s, label in parts if s < 0]
    return "; ".join(bad) if bad else f"score {format_score(score)}"


def _held(view: View, unit: Unit) -> Target | None:
    """Units the scheduler must not touch this cycle, and the ones held stopped."""
    say = view.decisions.append
    uid = unit.id
    acting = view.state.quorum or view.spec.options.no_quorum_policy == "ignore"
    if not acting:
        if view.spec.options.no_quorum_policy == "freeze":
            return Target(unit, frozen=True)
        if view.spec.options.no_quorum_policy == "demote" and unit.promotable:
            return Target(unit, dict(view.live(unit)))  # no primary: every instance a replica
        return Target(unit)
    for node in view.nodes:
        for m in unit.members:
            roles = view.roles(m.id, node)
            if "unknown" in roles and view.node[node].status == "online":
                say(
                    Decision(
                        "probe", f"{m.id} state on {node} is unknown: probing first", uid, node
                    )
                )
                return Target(unit, frozen=True)
            if "failed" in roles and not view.gone(node) and node not in view.unsafe:
                if m.meta.on_fail == "block":
                    say(
                        Decision(
                            "blocked",
                            f"{m.id} failed on {node} and its on_fail is block: leaving "
                            f"{uid} alone until the failure is cleaned up",
                            uid,
                            node,
                        )
                    )
                    return Target(unit, frozen=True)
                if m.meta.on_fail == "fence" and node not in view.fence:
                    say(
                        Decision(
                            "blocked",
                            f"{m.id} failed on {node} and its on_fail is fence, but fencing is "
                            f"off: leaving {uid} alone",
                            uid,
                            node,
                        )
                    )
                    return Target(unit, frozen=True)
    if unit.clone is None:
        for node in sorted(view.was_on.get(uid, ())):
            if node in view.unsafe and unit.exclusive:
                why = (
                    "fencing is off and no watchdog"
                    if not view.spec.options.fencing
                    else "it cannot be fenced"
                )
                say(
                    Decision(
                        "blocked",
                        f"{uid} was on {node}, which was lost and is not fenced; {why}: "
                        "not starting it elsewhere",
                        uid,
                        node,
                    )
                )
                return Target(unit, frozen=True)
            if node in view.unsafe:
                say(
                    Decision(
                        "recover",
                        f"{uid} was on lost node {node}; it is not exclusive, so it is "
                        "recovered without waiting for fencing",
                        uid,
                        node,
                    )
                )
            if node in view.maintenance and node in view.live(unit):
                say(
                    Decision(
                        "unmanaged", f"{uid} runs on {node}, in maintenance: left alone", uid, node
                    )
                )
                return Target(unit, frozen=True)
    if unit.target_role == "stopped":
        if view.live(unit):
            say(Decision("stop", f"{uid} has target_role stopped", uid))
        return Target(unit)
    if unit.clone is None:
        for m in unit.members:
            failed = [n for (r, n) in view.failcounts if r == m.id]
            if m.meta.on_fail == "stop" and failed:
                say(
                    Decision(
                        "stop",
                        f"{m.id} failed on {', '.join(failed)} and its on_fail is stop: {uid} "
                        "stays stopped until the failure is cleaned up or expires",
                        uid,
                    )
                )
                return Target(unit)
    return None


def place_all(view: View) -> dict[str, Target]:
    targets: dict[str, Target] = {}
    load = dict.fromkeys(view.nodes, 0)
    for unit in placement_order(view):
        target = _held(view, unit)
        if target is None:
            if unit.clone is None:
                target = _place_single(view, unit, targets, load)
            else:
                target = _place_clone(view, unit, targets, load)
        targets[unit.id] = target
        for node in target.hosts(view):
            load[node] += len(unit.members) * max(1, target.nodes.get(node, 1))
    _apply_orders(view, targets)
    return targets


def _place_single(
    view: View, unit: Unit, targets: dict[str, Target], load: dict[str, int]
) -> Target:
    scores = node_scores(view, unit, targets, load)
    live = view.live(unit)
    eligible = [n for n in view.nodes if scores[n][0] >= 0]
    uid = unit.id
    if not eligible:
        reasons = "; ".join(f"{n}: {_why_not(scores, n)}" for n in view.nodes)
        view.decisions.append(Decision("cannot-run", f"{uid} cannot run anywhere ({reasons})", uid))
        return Target(unit)
    best = max(eligible, key=lambda n: (scores[n][0], n in live, -load[n], -view.index(n)))
    was = [n for n in view.nodes if n in live]
    lost = sorted(n for n in view.was_on.get(uid, ()) if view.gone(n) or n in view.unsafe)
    score = format_score(scores[best][0])
    if best in live:
        failed = [m.id for m in unit.members if "failed" in view.roles(m.id, best)]
        if failed:
            m = next(x for x in unit.members if x.id == failed[0])
            limit = m.meta.migration_threshold
            of = f" of migration_threshold {limit}" if limit else ""
            view.decisions.append(
                Decision(
                    "restart",
                    f"{failed[0]} failed on {best}: restarting {uid} there (fail count "
                    f"{view.failcount(m.id, best)}{of})",
                    uid,
                    best,
                )
            )
    elif was:
        failed_there = any("failed" in view.roles(m, was[0]) for m in unit.member_ids)
        kind: DecisionKind = "recover" if failed_there else "move"
        view.decisions.append(
            Decision(
                kind,
                f"{uid} moves {was[0]} → {best} (score {score}): "
                f"{was[0]}: {_why_not(scores, was[0])}",
                uid,
                best,
            )
        )
    elif lost:
        view.decisions.append(
            Decision(
                "recover", f"{uid} recovers on {best} (score {score}): {lost[0]} is gone", uid, best
            )
        )
    else:
        view.decisions.append(
            Decision("start", f"{uid} starts on {best} (score {score})", uid, best)
        )
    return Target(unit, {best: 1})


def _place_clone(
    view: View, unit: Unit, targets: dict[str, Target], load: dict[str, int]
) -> Target:
    assert unit.clone is not None
    clone = unit.clone
    scores = node_scores(view, unit, targets, load)
    live = view.live(unit)
    alloc: dict[str, int] = {}
    for node in view.nodes:
        if node in view.maintenance and node in live:
            alloc[node] = live[node]
    remaining = (clone.max or len(view.nodes)) - sum(alloc.values())
    eligible = [n for n in view.nodes if n not in alloc and scores[n][0] >= 0]
    for round_ in range(clone.max_per_node):
        slot = {
            n: _slot_score(scores[n][0], live.get(n, 0), round_, unit.stickiness) for n in eligible
        }
        order = sorted(
            (n for n in eligible if slot[n] >= 0),
            key=lambda n: (
                -slot[n],
                -(live.get(n, 0) > round_),
                load[n] + alloc.get(n, 0),
                view.index(n),
            ),
        )
        for node in order:
            if remaining <= 0:
                break
            if alloc.get(node, 0) == round_:
                alloc[node] = round_ + 1
                remaining -= 1
    target = Target(unit, alloc)
    if unit.promotable:
        target.primary = elect(view, unit, alloc)
    before = sorted((n, c) for n, c in live.items())
    after = sorted((n, c) for n, c in alloc.items() if c)
    if before != after:

        def show(items: list[tuple[str, int]]) -> str:
            return ", ".join(n if c == 1 else f"{n}×{c}" for n, c in items) or "none"

        left = [f"{n}: {_why_not(scores, n)}" for n in view.nodes if n in live and n not in alloc]
        why = f"; {'; '.join(left)}" if left else ""
        view.decisions.append(
            Decision(
                "move",
                f"{unit.id} runs on {show(after)} (was {show(before)}{why})",
                unit.id,
            )
        )
    if not alloc:
        reasons = "; ".join(f"{n}: {_why_not(scores, n)}" for n in view.nodes)
        view.decisions.append(
            Decision("cannot-run", f"{unit.id} cannot run anywhere ({reasons})", unit.id)
        )
    return target


def _slot_score(score: int, running: int, round_: int, stickiness: int) -> int:
    """A node's score for the clone's copy number ``round_ + 1`` there: stickiness holds the
    copies that run (Pacemaker's is per instance), not one more. A flat bonus for any node
    with a copy would move the next copy there, and the cycle after would move it back."""
    if not 0 < running <= round_ or not stickiness or not -INF < score < INF:
        return score  # no copy there (no stickiness in it), or this copy runs there
    return score - stickiness


def _apply_orders(view: View, targets: dict[str, Target]) -> None:
    """Mandatory order: ``then`` cannot run while ``first`` cannot (Pacemaker's semantics)."""
    changed = True
    while changed:
        changed = False
        for order in view.spec.orders:
            first, then = targets.get(order.first), targets.get(order.then)
            if first is None or then is None or then.frozen or not then.running:
                continue
            needs_primary = order.first_action == "promote" and first.unit.promotable
            ok = bool(first.hosts(view, "primary")) if needs_primary else first.running
            if not ok:
                targets[order.then] = Target(then.unit)
                what = "be promoted" if needs_primary else "run"
                view.decisions.append(
                    Decision(
                        "cannot-run",
                        f"{order.then} cannot run: it is ordered after {order.first}, which "
                        f"cannot {what}",
                        order.then,
                    )
                )
                changed = True
