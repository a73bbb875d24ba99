"""Which instance of a promotable clone is the primary.

Rules, in order:

1. ``target_role = "unpromoted"``: no primary.
2. A primary on a lost node that is neither fenced in this transition nor self-fenced by
   its watchdog blocks promotion anywhere (two primaries would be split brain).
3. The current primary stays, unless it will not run, is banned for the primary role, or
   another candidate's primary-role location score beats the current one's plus the
   clone's stickiness (``failback = "auto"`` means stickiness 0, so a preferred node takes
   the primary back when it returns).
4. Otherwise the candidate with the best primary-role location score, then the highest
   reported promotion score (the most up-to-date replica), then one already running as a
   replica, then config order. A negative reported promotion score means "cannot be
   primary" (Pacemaker's master score).
5. Pacemaker's rule for a node with no promotion score: once any instance of the clone
   reported a score, a node that reported none never promotes (it may lag); the primary in
   place is not demoted for a missing score. A clone with ``notify = true`` follows that rule
   from its first transition, as Pacemaker does (an instance without a score gets priority
   -1): such a clone runs an agent written for Pacemaker's whole protocol (PAF requires
   ``notify``), which relies on it. PAF marks only the cleanly shut-down primary (score 1 at
   its start); promoting a standby before that forks a timeline the old primary cannot
   follow, and PAF's pre-promote election cannot tell (every standby that never streamed
   reports the start of its WAL segment, so they tie). Any other clone whose agent never
   reports a score keeps hakeeper's earlier rule (a missing score counts as 0).
6. ``on_fail = "demote"``: a node where the member's fail count stands is not promoted
   (the primary in place is kept). The failed instance was demoted and kept there as a
   replica; promoting it again at once would retry what just failed, in a tight loop (the
   session store's refused promote). It is a candidate again once ``failure_timeout``
   expires the count or ``hakeeper resource cleanup`` clears it.
"""

from __future__ import annotations

from hakeeper.model.scores import INF, add, format_score
from hakeeper.model.transition import Decision
from hakeeper.policy.view import Unit, View


def current_primaries(view: View, unit: Unit) -> list[str]:
    rid = unit.members[0].id
    return [n for n in view.nodes if "promoted" in view.roles(rid, n)]


def elect(view: View, unit: Unit, alloc: dict[str, int]) -> str | None:
    rid = unit.members[0].id
    if unit.target_role in ("unpromoted", "stopped"):
        return None
    for node in current_primaries(view, unit):
        if node in view.unsafe:
            view.decisions.append(
                Decision(
                    "blocked",
                    f"{unit.id} primary was on {node}, which was lost and is not fenced; "
                    f"{_why_unfenced(view)}: not promoting another instance",
                    unit.id,
                    node,
                )
            )
            return None
    if view.gone_primary_maintenance(unit):
        return view.gone_primary_maintenance(unit)
    scores = view.state.promotion_scores
    reported = scores.get(rid) or scores.get(unit.id) or {}
    needs_score = bool(reported) or (unit.clone is not None and unit.clone.notify)
    # The primary in place counts as reporting 0 until it reports: PAF sets its own score in
    # the first monitor after its promote, and a working primary is not moved for that gap.
    primaries = set(current_primaries(view, unit))
    candidates: dict[str, int] = {}
    held: list[str] = []
    for node in view.nodes:
        if alloc.get(node, 0) <= 0 or node in view.maintenance:
            continue
        if reported.get(node, -1 if needs_score and node not in primaries else 0) < 0:
            continue
        if node not in primaries and _failed_under_demote(view, unit, node):
            held.append(node)
            continue
        score = add(0, *(s for s, _ in view.score_of_location(unit, node, "primary")))
        if score > -INF:
            candidates[node] = score
    if not candidates:
        if alloc:
            if held:
                why = (
                    f"{', '.join(held)} failed under on_fail demote and the fail count stands; "
                    "no other placed instance is allowed to"
                )
            elif needs_score:
                why = "none placed has a promotion score >= 0"
            else:
                why = "none placed is allowed to"
            view.decisions.append(
                Decision("cannot-run", f"{unit.id}: no instance can be primary ({why})", unit.id)
            )
        return None
    healthy = [
        n
        for n in current_primaries(view, unit)
        if n in candidates and "failed" not in view.roles(rid, n)
    ]
    if healthy:
        current = healthy[0]
        others = {n: s for n, s in candidates.items() if n != current}
        kept = add(candidates[current], unit.stickiness)
        if not others or max(others.values()) <= kept:
            return current
        best = max(others, key=lambda n: (others[n], -view.index(n)))
        view.decisions.append(
            Decision(
                "promote",
                f"{unit.id} primary moves {current} → {best}: primary score "
                f"{format_score(others[best])} on {best} beats {format_score(kept)} on {current}",
                unit.id,
                best,
            )
        )
        return best

    def rank(node: str) -> tuple[int, int, int, int]:
        running = 1 if "started" in view.roles(rid, node) else 0
        return (candidates[node], reported.get(node, 0), running, -view.index(node))

    best = max(candidates, key=rank)
    old = current_primaries(view, unit)
    why = f"promotion score {reported.get(best, 0)}" if reported else "first eligible"
    if old:
        message = f"{unit.id} primary on {old[0]} is gone or failed; promoting {best} ({why})"
    else:
        failed = [n for n in view.nodes if "failed" in view.roles(rid, n)]
        after = f" ({rid} failed on {', '.join(failed)})" if failed else ""
        message = f"{unit.id} has no running primary{after}; promoting {best} ({why})"
    view.decisions.append(Decision("promote", message, unit.id, best))
    return best


def _failed_under_demote(view: View, unit: Unit, node: str) -> bool:
    """Rule 6 (module docstring): with ``on_fail = "demote"``, is ``node`` held back from
    promotion by a fail count that stands? Says why when it is."""
    member = unit.members[0]
    count = view.failcount(member.id, node)
    if member.meta.on_fail != "demote" or count <= 0:
        return False
    timeout = member.meta.failure_timeout
    until = (
        f"failure_timeout {timeout:g}s expires it"
        if timeout > 0
        else "failure_timeout is 0: never on its own"
    )
    view.decisions.append(
        Decision(
            "demote",
            f"{member.id} failed {count}x on {node} and its on_fail is demote: {node} is not "
            f"promoted while that fail count stands (until {until}, or until it is cleared)",
            unit.id,
            node,
            fix=("resource", "cleanup", member.id, node),
        )
    )
    return True


def _why_unfenced(view: View) -> str:
    if not (view.state.quorum or view.spec.options.no_quorum_policy == "ignore"):
        return "there is no quorum"
    if not view.spec.options.fencing:
        return "fencing is off and no watchdog"
    return "it cannot be fenced"
