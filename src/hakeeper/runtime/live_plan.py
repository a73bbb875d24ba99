"""The dry run of the scheduler (Pacemaker's crm_simulate), shared by ``hakeeper plan`` and
the API's ``GET /v1/plan``: one computation, so a plan read through ``--url`` is the plan a
cluster host prints.

`plan_from` is pure (a spec, a state, the what-if questions applied in order);
`live_plan` starts it from the running cluster: its config in force, with the run-time
overrides, and the state its records show.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.state import ClusterState
from hakeeper.model.transition import Transition
from hakeeper.policy.scheduler import schedule
from hakeeper.policy.simulate import spec_if, what_if
from hakeeper.runtime.snapshot import observe_cluster
from hakeeper.runtime.store import ClusterStore


@dataclass(frozen=True, slots=True)
class Plan:
    #: The spec the scheduler ran on (after the what-if questions that change it).
    spec: ClusterSpec
    transition: Transition


def plan_from(spec: ClusterSpec, state: ClusterState, questions: Sequence[str]) -> Plan:
    """Apply each question in order, then schedule; a bad question is a `ConfigError`."""
    for question in questions:
        spec = spec_if(spec, question)
        state = what_if(state, question, tuple(n.name for n in spec.nodes))
    return Plan(spec, schedule(spec, state))


async def live_plan(
    store: ClusterStore, spec: ClusterSpec, now: float, questions: Sequence[str]
) -> Plan:
    """The plan from what the cluster runs now (``spec``: the config in force)."""
    snapshot = await observe_cluster(store, spec, now)
    return plan_from(snapshot.spec, snapshot.observed.state, questions)
