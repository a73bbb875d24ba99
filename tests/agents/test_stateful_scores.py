"""Issue 19 item 6: ``Stateful``'s promotion scores reach the scheduler.

Both Debian's Stateful agents (``ocf:pacemaker:Stateful`` from pacemaker-resource-agents,
``ocf:heartbeat:Stateful`` from resource-agents) run unchanged by hakeeper's OCF runner, one
instance per node, each with its node's real installed tools as ``HA_SBIN_DIR`` (first on
``PATH``), answered by the real attribute service over its socket; the cluster store under
them is a fake. The agents set their scores with ``crm_attribute --promotion -v N`` (the
pacemaker one directly, the heartbeat one through ``ocf_promotion_score``) and clear them
with ``-D`` on stop; the scheduler then promotes by what they set.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from hakeeper.agents.base import OcfRc, OpRequest, ResourceAgent
from hakeeper.agents.factory import AgentContext
from hakeeper.agents.registry import BUILTIN_AGENTS
from hakeeper.config.loader import spec_from_text
from hakeeper.model.attributes import promotion_scores, visible
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.state import state_from_dict
from hakeeper.policy.scheduler import schedule
from hakeeper.runtime.crm_tools.meta import CRM_FEATURE_SET
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.store import ClusterStore
from tests.agents.conftest import require_ocf_agent
from tests.fakes import LocalCoordinator
from tests.runtime.crm_tools.conftest import served_tools

NODES = ("n1", "n2")
KEYS = KeySpace("st")
REQ = OpRequest(timeout=30, epoch=1)


def spec_for(provider: str) -> ClusterSpec:
    return spec_from_text(
        '[cluster]\nname = "st"\n[nodes.n1]\n[nodes.n2]\n'
        f'[resources.st]\nagent = "ocf:{provider}:Stateful"\n'
        '[clones.st-ha]\nresource = "st"\npromotable = true\n',
        "test",
    )


@contextlib.asynccontextmanager
async def stateful_per_node(
    provider: str, store: ClusterStore, tmp_path: Path
) -> AsyncIterator[dict[str, ResourceAgent]]:
    """One real Stateful instance per node, each calling its own node's tools."""
    spec = spec_for(provider)
    async with contextlib.AsyncExitStack() as stack:
        agents: dict[str, ResourceAgent] = {}
        for i, node in enumerate(NODES):
            tools = await stack.enter_async_context(served_tools(spec, store, node))
            agents[node] = BUILTIN_AGENTS.make(
                f"ocf:{provider}:Stateful",
                AgentContext(
                    instance=f"st:{i}",
                    params={"state": str(tmp_path / f"{node}.state")},
                    state_dir=tmp_path,
                    cluster_env={
                        "HA_SBIN_DIR": str(tools),
                        "PATH": f"{tools}:{os.environ.get('PATH', '/usr/bin:/bin')}",
                        "OCF_RESKEY_crm_feature_set": CRM_FEATURE_SET,
                    },
                ),
            )
        try:
            yield agents
        finally:
            for agent in agents.values():
                await agent.demote(REQ)
                await agent.stop(REQ)


async def scores(store: ClusterStore) -> dict[str, dict[str, int]]:
    """The promotion scores as the controller observes them (`runtime.observed`)."""
    live = await store.live_attributes()
    return promotion_scores(visible(live.attributes, live.members))


async def check_scores_and_promotion(provider: str, tmp_path: Path) -> None:
    coord = LocalCoordinator()
    store = ClusterStore(coord, KEYS)
    for node in NODES:
        await coord.put(KEYS.member(node), b"{}")
    async with stateful_per_node(provider, store, tmp_path) as agents:
        for node in NODES:
            assert (await agents[node].start(REQ)).rc == OcfRc.SUCCESS
        assert await scores(store) == {"st": {"n1": 5, "n2": 5}}
        assert (await agents["n2"].promote(REQ)).rc == OcfRc.SUCCESS
        assert await scores(store) == {"st": {"n1": 5, "n2": 10}}

        # Both run unpromoted (say, after the controller restarted): n1 comes first in the
        # config, so only n2's higher score can make the scheduler choose it.
        state = state_from_dict(
            {
                "nodes": {n: {} for n in NODES},
                "instances": [{"resource": "st", "node": n, "role": "started"} for n in NODES],
                "promotion_scores": await scores(store),
            }
        )
        keys = {a.key for a in schedule(spec_for(provider), state).actions}
        assert "promote st on n2" in keys
        assert "promote st on n1" not in keys

        # Stop clears the stopped node's score (crm_attribute --promotion -D).
        assert (await agents["n1"].stop(REQ)).rc == OcfRc.SUCCESS
        assert await scores(store) == {"st": {"n2": 10}}


async def test_pacemakers_stateful_sets_its_scores_and_the_scheduler_promotes_by_them(
    tmp_path: Path,
) -> None:
    require_ocf_agent("pacemaker", "Stateful")
    await check_scores_and_promotion("pacemaker", tmp_path)


async def test_heartbeats_stateful_sets_its_scores_through_ocf_promotion_score(
    tmp_path: Path,
) -> None:
    require_ocf_agent("heartbeat", "Stateful")
    await check_scores_and_promotion("heartbeat", tmp_path)
