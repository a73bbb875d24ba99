"""What a node's executor asks of its agents and tells the store about their ops.

One `AgentOps` per node daemon: each instance's agent, built once from the config and kept
until its resource changes; the request of each op (its timeout, from the config, capped
where the caller has less time); and, after an op, its events in the log and the instance's
status under the epoch acted on. The executor decides what to do; this holds how.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from hakeeper.agents.base import OpRequest, OpResult, ResourceAgent
from hakeeper.agents.events import op_events
from hakeeper.agents.factory import AgentContext, AgentMaker
from hakeeper.errors import CoordError
from hakeeper.model.cluster import ClusterSpec, Primitive
from hakeeper.model.records import InstanceStatus
from hakeeper.model.roles import InstanceRole, ReportedRole, event_role
from hakeeper.runtime.crm_tools.install import tools_dir
from hakeeper.runtime.crm_tools.meta import CRM_FEATURE_SET, resource_meta
from hakeeper.runtime.events_log import EventLog
from hakeeper.runtime.store import ClusterStore

log = logging.getLogger(__name__)

Key = tuple[str, int]  # (resource, instance)


class AgentOps:
    def __init__(
        self,
        *,
        node: str,
        spec: Callable[[], ClusterSpec],
        store: ClusterStore,
        events: EventLog,
        state_dir: Path,
        agents: AgentMaker,
        wall: Callable[[], float],
    ) -> None:
        self._node = node
        self._spec = spec
        self._store = store
        self._events = events
        self._state_dir = state_dir
        self._table = agents
        self._wall = wall
        self._agents: dict[Key, ResourceAgent] = {}
        # Pacemaker's tools for the agents that call them (hakeeper.runtime.crm_tools): first
        # on PATH too, as ocf_local_nodename runs a bare `crm_node -n`.
        sbin = tools_dir(state_dir)
        self._cluster_env = {
            "HA_SBIN_DIR": str(sbin),
            "PATH": f"{sbin}:{os.environ.get('PATH') or '/usr/sbin:/usr/bin:/sbin:/bin'}",
            "OCF_RESKEY_crm_feature_set": CRM_FEATURE_SET,
        }

    def agent(self, primitive: Primitive, instance: int) -> ResourceAgent:
        key = (primitive.id, instance)
        if key not in self._agents:
            name = primitive.id if instance == 0 else f"{primitive.id}:{instance}"
            context = self.context(self._spec(), primitive, name)
            self._agents[key] = self._table.make(primitive.agent, context)
        return self._agents[key]

    def context(self, spec: ClusterSpec, primitive: Primitive, name: str = "") -> AgentContext:
        """What building the agent of instance ``name`` of ``primitive`` (default: the
        resource's own name) takes from the config and this node."""
        return AgentContext(
            instance=name or primitive.id,
            params=primitive.params,
            meta=resource_meta(spec, primitive.id),
            state_dir=self._state_dir / "agents",
            secret_file=Path(spec.coordination.secret_file),
            cluster_env=self._cluster_env,
        )

    def check(self, spec: ClusterSpec, resources: set[str]) -> None:
        """Build the agents of ``resources`` from ``spec`` now: a ConfigError (an OCF agent
        that does not exist, a missing required parameter) rejects the config before it
        is used, instead of failing a start later."""
        for primitive in spec.primitives:
            if primitive.id in resources:
                self._table.make(primitive.agent, self.context(spec, primitive))

    def forget(self, resources: set[str]) -> None:
        """Drop cached agents of changed resources; the next op builds them anew."""
        for key in [k for k in self._agents if k[0] in resources]:
            del self._agents[key]

    def interval(self, primitive: Primitive) -> float:
        for op in primitive.ops:
            if op.name == "monitor" and op.interval > 0:
                return op.interval
        return self._spec().timing.monitor_interval

    def request(
        self,
        primitive: Primitive,
        op: str,
        epoch: int = 0,
        *,
        interval: float = 0.0,
        cap: float | None = None,
    ) -> OpRequest:
        timeout = primitive.op_timeout(op)
        if cap is not None:
            timeout = max(0.05, min(timeout, cap))
        return OpRequest(timeout=timeout, node=self._node, interval=interval, epoch=epoch)

    async def record(
        self, primitive: Primitive, result: OpResult, role: InstanceRole, reason: str = ""
    ) -> None:
        """Append the op's events; ``role`` is the instance's role before the op (for a
        start, the one it takes), translated here, at the edge, into the event log's word."""
        said = event_role(role, promotable=self._spec().promotable_member(primitive.id))
        for event in op_events(result, node=self._node, role=said, reason=reason):
            with contextlib.suppress(CoordError):
                await self._events.append(event)

    async def report(
        self,
        resource: str,
        instance: int,
        role: ReportedRole,
        epoch: int,
        result: OpResult,
        *,
        demotable: bool = False,
    ) -> None:
        status = InstanceStatus(
            resource, self._node, instance, role, epoch, self._wall(),
            result.op, int(result.rc), result.exit_reason or "", demotable,
        )  # fmt: skip
        try:
            await self._store.report(status)
        except CoordError as exc:
            log.warning("event=status_report_failed resource=%s error=%r", resource, str(exc))
