"""The executor's agent side: agents, op requests, and what ops tell the store."""

from __future__ import annotations

import time
from pathlib import Path

from hakeeper.agents.registry import BUILTIN_AGENTS
from hakeeper.model.timing import PROFILES
from hakeeper.runtime.agent_ops import AgentOps
from hakeeper.runtime.events_log import EventLog
from hakeeper.runtime.store import ClusterStore
from tests.fakes import LocalCoordinator
from tests.runtime.test_executor import KEYS, SPEC, SPEC_TEXT, spec_from_text


def test_the_monitor_interval_follows_the_profile_of_the_spec_in_force(tmp_path: Path) -> None:
    coord = LocalCoordinator()
    specs = [SPEC]
    ops = AgentOps(
        node="n1", spec=lambda: specs[-1], store=ClusterStore(coord, KEYS),
        events=EventLog(coord, KEYS, "n1"), state_dir=tmp_path, agents=BUILTIN_AGENTS,
        wall=time.time,
    )  # fmt: skip
    db = SPEC.primitive("db")
    assert db is not None
    fast = ops.interval(db)

    specs.append(spec_from_text(SPEC_TEXT.replace('"fast"', '"wan"'), "test"))

    assert (fast, ops.interval(db)) == (PROFILES["fast"].monitor_interval, 10.0)
