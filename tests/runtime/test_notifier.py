"""Clone notifications between two nodes' executors through the store, with a real OCF
script as the agent (it records the environment its notify action gets)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from pathlib import Path

from hakeeper.agents.base import MetaData, OpRequest, ResourceAgent
from hakeeper.agents.ocf import OcfAgent
from hakeeper.config.loader import spec_from_text
from hakeeper.model.cluster import Primitive
from hakeeper.model.records import InstanceStatus
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.notifier import Notifier
from hakeeper.runtime.store import ClusterStore
from tests.fakes import LocalCoordinator

KEYS = KeySpace("c1")
SPEC = spec_from_text(
    '[cluster]\nname = "c1"\n[nodes.n1]\n[nodes.n2]\n[resources.pg]\nagent = "process"\n'
    'params = { command = "sleep 1" }\n'
    '[clones.db]\nresource = "pg"\npromotable = true\nnotify = true\n',
    "test",
)


def recording_agent(root: Path, node: str) -> OcfAgent:
    """ocf:test:Rec, which writes its notify environment to ``<root>/<node>.env``."""
    path = root / "resource.d" / "test" / "Rec"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        '#!/bin/sh\n[ "$1" = notify ] && env | grep CRM_meta_notify_ | sort '
        f'> "{root}/$OCF_RESKEY_CRM_meta_on_node.env"\nexit 0\n'
    )
    path.chmod(0o755)
    return OcfAgent(
        provider="test", type_="Rec", instance="pg", params={}, meta={},
        metadata=MetaData("Rec"), ocf_root=root,
    )  # fmt: skip


def notifier(store: ClusterStore, node: str, agent: ResourceAgent) -> Notifier:
    def request(p: Primitive, meta: Mapping[str, str]) -> OpRequest:
        return OpRequest(timeout=30, node=node, meta=meta)

    return Notifier(
        node=node, spec=lambda: SPEC, store=store, agent=lambda p: agent,
        local_role=lambda r: "started", request=request,
    )  # fmt: skip


async def test_a_pre_promote_round_runs_notify_on_every_running_instance_first(
    tmp_path: Path,
) -> None:
    coord = LocalCoordinator()
    store = ClusterStore(coord, KEYS)
    for node in ("n1", "n2"):
        await coord.put(KEYS.member(node), b"{}")
        await store.report(InstanceStatus("pg", node, 0, "started", 1, time.time()))
    agent = recording_agent(tmp_path, "n1")
    answering = asyncio.create_task(notifier(store, "n2", agent).answer_rounds())
    try:
        await asyncio.sleep(0.1)  # the watch is open
        primitive = SPEC.primitive("pg")
        assert primitive is not None
        async with asyncio.timeout(60):
            await notifier(store, "n1", agent).round(primitive, "pre", "promote")
    finally:
        answering.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await answering
    for node in ("n1", "n2"):
        seen = set((tmp_path / f"{node}.env").read_text().splitlines())
        assert {
            "OCF_RESKEY_CRM_meta_notify_type=pre",
            "OCF_RESKEY_CRM_meta_notify_operation=promote",
            "OCF_RESKEY_CRM_meta_notify_promote_uname=n1",
            "OCF_RESKEY_CRM_meta_notify_active_uname=n1 n2",
        } <= seen
    assert await coord.range(KEYS.root + "notify/") == []  # the round was cleaned up
