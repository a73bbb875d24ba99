"""`hakeeper upgrade`: the plan, and the gates that stop a roll (on a fake engine, no daemons)."""

from __future__ import annotations

import asyncio
import contextvars
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hakeeper.cli.main import app
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.records import MemberRecord
from hakeeper.model.wire_version import Format, FormatSupport, VersionRange
from hakeeper.runtime.record_codec import encode_member
from hakeeper.runtime.rolling_upgrade import GateFailed, Timeouts, roll
from hakeeper.runtime.store import ClusterStore
from tests.cli.conftest import KEYS, runs
from tests.fakes import LocalCoordinator

pytestmark = pytest.mark.usefixtures("use_local")

FAST = Timeouts(drain=1.0, restart=1.0, rejoin=1.0)


async def member(coord: LocalCoordinator, node: str, newest_wire: int = 2) -> None:
    lease = await coord.grant(30.0)
    wire = FormatSupport(Format.RAFT_PEER_WIRE, VersionRange(1, newest_wire))
    record = MemberRecord(node, "127.0.0.1", "0.1.0", (wire,))
    await coord.put(KEYS.member(node), encode_member(record), lease)


async def controller(coord: LocalCoordinator, node: str) -> None:
    await coord.put(KEYS.controller, node.encode(), await coord.grant(30.0))


def upgrade(config_file: Path, *args: str) -> tuple[int, str]:
    # In a copy of the context: the hints' config (a ContextVar) must not leak into later tests.
    argv = ["upgrade", "--config", str(config_file), *args]
    result = contextvars.copy_context().run(CliRunner().invoke, app, argv)
    return result.exit_code, result.output


async def members(coord: LocalCoordinator, *nodes: str, old: str = "") -> None:
    for node in nodes:
        await member(coord, node, 1 if node == old else 2)


def test_the_plan_puts_the_controller_last_and_names_the_cluster_wire(
    config_file: Path, coord: LocalCoordinator
) -> None:
    asyncio.run(members(coord, "n1", "n2", "n3", old="n2"))
    asyncio.run(controller(coord, "n1"))

    code, out = upgrade(config_file, "--json")

    plan = json.loads(out)["plan"]
    assert code == 0
    assert plan["order"] == ["n2", "n3", "n1"]
    assert plan["cluster_raft_wire"] == 1
    assert plan["problems"] == []


def test_the_plan_in_words_says_how_to_start(config_file: Path, coord: LocalCoordinator) -> None:
    asyncio.run(members(coord, "n1", "n2", "n3"))

    code, out = upgrade(config_file)

    assert code == 0
    assert "rolling upgrade plan" in out
    assert "run `hakeeper upgrade --rolling` to start" in out


def test_a_roll_does_not_start_while_a_node_is_down(
    config_file: Path, coord: LocalCoordinator
) -> None:
    asyncio.run(members(coord, "n1", "n2"))

    code, out = upgrade(config_file, "--rolling")

    assert code == 1
    assert "n3 is not online: a roll needs every node up" in out


async def test_a_drain_whose_resource_cannot_move_stops_the_roll_naming_node_and_undo(
    spec: ClusterSpec, coord: LocalCoordinator, store: ClusterStore
) -> None:
    await members(coord, "n1", "n2", "n3")
    await runs(store, "fs", "n1")  # nothing here will ever move it

    with pytest.raises(GateFailed) as stopped:
        await roll(store, spec, ("n1",), lambda step: None, FAST)

    assert "n1: its resources (fs) did not all move away" in str(stopped.value)
    assert "undo: hakeeper node online n1" in str(stopped.value)
    assert (await store.node_flags("n1")).standby, "a failed roll undid the operator's standby"


async def test_a_node_that_does_not_come_back_stops_the_roll_at_its_restart(
    spec: ClusterSpec, coord: LocalCoordinator, store: ClusterStore
) -> None:
    await members(coord, "n1", "n2", "n3")
    steps = []

    with pytest.raises(GateFailed, match="n2: its daemon did not come back under a new lease"):
        await roll(store, spec, ("n2",), steps.append, FAST)

    assert [(s.step, s.done) for s in steps] == [("drain", True), ("restart", False)]
