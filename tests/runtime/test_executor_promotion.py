"""The executor and the promotion protocol: what a stop clears, and what agents are given."""

from __future__ import annotations

import time
from pathlib import Path

from hakeeper.agents.registry import BUILTIN_AGENTS
from hakeeper.config.loader import spec_from_text
from hakeeper.model.attributes import NodeAttribute
from hakeeper.model.records import Assignment, MemberRecord, Placement
from hakeeper.model.timing import PROFILES
from hakeeper.runtime.events_log import EventLog
from hakeeper.runtime.executor import Executor
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.membership import Membership
from hakeeper.runtime.record_codec import encode_assignment
from hakeeper.runtime.store import ClusterStore
from tests.fakes import LocalCoordinator

KEYS = KeySpace("c1")
SPEC = spec_from_text(
    '[cluster]\nname = "c1"\n[nodes.n1]\naddress = "127.0.0.11"\n'
    '[resources.pg]\nagent = "process"\nparams = { command = "sleep 300" }\n'
    '[clones.db]\nresource = "pg"\npromotable = true\n',
    "test",
)


async def test_a_stop_clears_the_node_s_transient_promotion_score_only(tmp_path: Path) -> None:
    coord = LocalCoordinator()
    membership = Membership(
        coord, KEYS, MemberRecord("n1", "127.0.0.11"), PROFILES["fast"], time.monotonic
    )
    await membership.join()
    store = ClusterStore(coord, KEYS)
    executor = Executor(
        node="n1", spec=lambda: SPEC, store=store, events=EventLog(coord, KEYS, "n1"),
        membership=membership, state_dir=tmp_path, agents=BUILTIN_AGENTS,
    )  # fmt: skip
    await store.set_attribute(NodeAttribute("n1", "master-pg", "5", "reboot"))
    await store.set_attribute(NodeAttribute("n1", "master-pg", "9", "forever"))
    await coord.put(KEYS.assignment("pg"), encode_assignment(Assignment("pg", (Placement("n1"),))))
    await executor.converge()
    assert executor.local == {("pg", 0): "started"}
    await coord.put(KEYS.assignment("pg"), encode_assignment(Assignment("pg", ())))
    await executor.converge()
    assert executor.local == {}
    left = [(a.name, a.lifetime) for a in (await store.live_attributes()).attributes]
    assert left == [("master-pg", "forever")]
