"""The policy engine: ``schedule(config, state) -> Transition``.

A pure function of the cluster config and one observed-state snapshot: no I/O, no clock
("now" is ``state.now``), same input, same output. It imports only `hakeeper.model`,
`hakeeper.config` and its sibling modules:

- `hakeeper.policy.view` merges config and snapshot and decides fencing
  (fence-before-recover: what ran on a lost node counts as running until the node is fenced
  in this transition or its watchdog has reset it);
- `hakeeper.policy.placement` scores nodes and places every unit (`promotion` elects
  the primary of a promotable clone);
- `hakeeper.policy.graph` turns the placement into actions and their dependencies, with
  the retractions and prunes that `hakeeper.policy.assignments` reads off the controller's
  last assignments.

`docs/scheduler.md` describes the rules and where they differ from Pacemaker.
"""

from __future__ import annotations

from hakeeper.config.loader import to_spec
from hakeeper.config.schema import ClusterFile
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.state import ClusterState
from hakeeper.model.transition import Decision, Transition
from hakeeper.policy.graph import build
from hakeeper.policy.placement import place_all
from hakeeper.policy.view import build_view


def schedule(config: ClusterSpec | ClusterFile, state: ClusterState) -> Transition:
    """Decide what must happen to bring the cluster from ``state`` to where it should be."""
    spec = to_spec(config) if isinstance(config, ClusterFile) else config
    view = build_view(spec, state)
    if not state.quorum:
        policy = spec.options.no_quorum_policy
        effect = {
            "stop": "stopping every resource this partition runs",
            "freeze": "keeping what runs, starting and moving nothing",
            "demote": "demoting every primary (replicas keep running), stopping the rest",
            "ignore": "acting as if it had quorum (no_quorum_policy = ignore)",
        }[policy]
        view.decisions.insert(0, Decision("no-quorum", f"no quorum: {effect}"))
    targets = place_all(view)
    return build(view, targets)
