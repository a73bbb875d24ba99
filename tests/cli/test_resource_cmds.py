"""`resource`, `node`, `fence` and `config apply`: what they write, and what they refuse."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hakeeper.api import actions
from hakeeper.cli import config_apply
from hakeeper.cli.main import app
from hakeeper.config import load_spec
from hakeeper.errors import ConfigError
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.records import InstanceStatus
from hakeeper.runtime.store import ClusterStore
from tests.cli.conftest import CLUSTER_TOML, KEYS, NOW, online, runs
from tests.fakes import LocalCoordinator

runner = CliRunner()


async def keys_under(coord: LocalCoordinator, prefix: str) -> list[str]:
    return [kv.key for kv in await coord.range(prefix)]


async def test_move_writes_the_constraint_and_says_what_happens_next(
    coord: LocalCoordinator, store: ClusterStore, spec: ClusterSpec
) -> None:
    await online(coord, "n1", "n2", "n3")
    await runs(store, "vip", "n1")
    lines = await actions.constrain(coord, spec, "move", "vip", "n2")
    observed = await store.observe(spec, NOW)
    assert [(c.kind, c.resource, c.node) for c in observed.state.constraints] == [
        ("move", "vip", "n2")
    ]
    assert "scheduler: stop vip on n1" in lines
    assert "scheduler: start vip on n2" in lines


async def test_a_second_move_replaces_the_first(
    coord: LocalCoordinator, store: ClusterStore, spec: ClusterSpec
) -> None:
    await actions.constrain(coord, spec, "move", "vip", "n2")
    lines = await actions.constrain(coord, spec, "move", "vip", "n3")
    assert any("replaces the earlier move" in line for line in lines)
    observed = await store.observe(spec, NOW)
    assert [c.node for c in observed.state.constraints] == ["n3"]


async def test_ban_of_a_group_member_constrains_the_group(
    coord: LocalCoordinator, store: ClusterStore, spec: ClusterSpec
) -> None:
    lines = await actions.constrain(coord, spec, "ban", "job", "n1")
    assert lines[0] == "job is part of reports: constraining reports"
    observed = await store.observe(spec, NOW)
    assert [(c.kind, c.resource) for c in observed.state.constraints] == [("ban", "reports")]
    assert (await actions.clear(coord, spec, "job", None)) == [
        "cleared 1 move/ban constraint(s) of reports"
    ]
    assert not (await store.observe(spec, NOW)).state.constraints


@pytest.mark.parametrize(
    ("name", "node_name", "named"),
    [("nope", "n1", "vip, web, fs, job, reports, web-clone"), ("vip", "n9", "n1, n2, n3")],
)
async def test_unknown_names_write_nothing_and_list_the_known_ones(
    coord: LocalCoordinator, spec: ClusterSpec, name: str, node_name: str, named: str
) -> None:
    before = coord.state.revision
    with pytest.raises(ConfigError, match=named):
        await actions.constrain(coord, spec, "move", name, node_name)
    assert coord.state.revision == before


async def test_cleanup_clears_fail_counts(
    coord: LocalCoordinator, store: ClusterStore, spec: ClusterSpec
) -> None:
    await store.record_failure("n1", "vip", NOW)
    await store.record_failure("n2", "vip", NOW)
    await store.record_failure("n1", "fs", NOW)
    assert await actions.cleanup(coord, spec, "vip", "n1") == ["vip: cleared 1 fail count(s) on n1"]
    assert await actions.cleanup(coord, spec, "reports", None) == [
        "fs: cleared 1 fail count(s)",
        "job: cleared 0 fail count(s)",
    ]
    left = (await store.observe(spec, NOW)).state.failcounts
    assert [(f.resource, f.node) for f in left] == [("vip", "n2")]


async def test_stop_and_start_set_and_clear_the_target_role(
    coord: LocalCoordinator, store: ClusterStore, spec: ClusterSpec
) -> None:
    await actions.set_role(coord, spec, "web-clone", stopped=True)
    assert (await store.observe(spec, NOW)).target_roles == {"web-clone": "stopped"}
    await actions.set_role(coord, spec, "web-clone", stopped=False)
    assert (await store.observe(spec, NOW)).target_roles == {}
    with pytest.raises(ConfigError, match="stop, start or restart web-clone"):
        await actions.set_role(coord, spec, "web", stopped=True)


async def test_restart_waits_for_the_stop_then_starts(
    coord: LocalCoordinator, store: ClusterStore, spec: ClusterSpec
) -> None:
    await online(coord, "n1")
    await runs(store, "vip", "n1")

    async def executor() -> None:  # plays the node: stops vip once the target role says so
        async with contextlib.aclosing(coord.watch(KEYS.target_role("vip"))) as changes:
            async for _ in changes:
                await store.report(InstanceStatus("vip", "n1", 0, "stopped", 2, NOW))
                return

    task = asyncio.create_task(executor())
    await asyncio.sleep(0.01)
    code, lines = await actions.restart(coord, spec, "vip", timeout=5.0, poll=0.01)
    await task
    assert code == 0, lines
    assert (await store.observe(spec, NOW)).target_roles == {}


async def test_restart_that_times_out_undoes_the_stop_and_exits_1(
    coord: LocalCoordinator, store: ClusterStore, spec: ClusterSpec
) -> None:
    await online(coord, "n1")
    await runs(store, "vip", "n1")
    code, lines = await actions.restart(coord, spec, "vip", timeout=0.05, poll=0.01)
    assert code == 1
    assert "still runs" in lines[0]
    assert (await store.observe(spec, NOW)).target_roles == {}


async def test_standby_online_and_maintenance_flip_flags(
    coord: LocalCoordinator, store: ClusterStore, spec: ClusterSpec
) -> None:
    assert await actions.set_flag(coord, spec, "n2", "standby", True) == ["n2: standby"]
    await actions.set_flag(coord, spec, "n2", "maintenance", True)
    assert (await store.node_flags("n2")).standby
    assert await actions.set_flag(coord, spec, "n2", "standby", False) == ["n2: maintenance"]
    await actions.set_flag(coord, spec, "n2", "maintenance", False)
    flags = await store.node_flags("n2")
    assert not flags.standby
    assert not flags.maintenance
    with pytest.raises(ConfigError, match="unknown node 'n7'"):
        await actions.set_flag(coord, spec, "n7", "standby", True)


async def test_fence_confirm_refuses_an_online_node_unless_forced(
    coord: LocalCoordinator, store: ClusterStore, spec: ClusterSpec
) -> None:
    await online(coord, "n2")
    with pytest.raises(ConfigError, match="split brain"):
        await actions.confirm(coord, spec, "n2", force=False, now=NOW)
    assert await coord.get(KEYS.fenced("n2")) is None
    lines = await actions.confirm(coord, spec, "n3", force=False, now=NOW)
    assert "nothing to confirm" in lines[0]
    assert await coord.get(KEYS.fenced("n3")) is None
    await runs(store, "vip", "n3")
    await actions.confirm(coord, spec, "n3", force=False, now=NOW)
    assert {n.name: n.fenced for n in (await store.observe(spec, NOW)).state.nodes}["n3"]
    await actions.confirm(coord, spec, "n2", force=True, now=NOW)
    assert await coord.get(KEYS.fenced("n2")) is not None


async def test_config_apply_refuses_an_invalid_file_and_writes_nothing(
    coord: LocalCoordinator, spec: ClusterSpec, tmp_path: Path
) -> None:
    bad = tmp_path / "new.toml"
    bad.write_text(CLUSTER_TOML.replace('agent = "vip"', 'agent = "nonsense"'))
    before = coord.state.revision
    with pytest.raises(ConfigError, match=r"new\.toml"):
        await config_apply.apply_config(coord, spec, CLUSTER_TOML, bad, lambda: True, NOW)
    renamed = tmp_path / "renamed.toml"
    renamed.write_text(CLUSTER_TOML.replace('name = "c1"', 'name = "c2"'))
    with pytest.raises(ConfigError, match="cannot be renamed"):
        await config_apply.apply_config(coord, spec, CLUSTER_TOML, renamed, lambda: True, NOW)
    assert coord.state.revision == before


async def test_config_apply_shows_the_plan_then_stores_the_text(
    coord: LocalCoordinator, store: ClusterStore, spec: ClusterSpec, tmp_path: Path
) -> None:
    await online(coord, "n1", "n2", "n3")
    new = tmp_path / "new.toml"
    new.write_text(
        CLUSTER_TOML + '\n[resources.extra]\nagent = "process"\nparams = { command = "x" }\n'
    )
    plan = await config_apply.prepare(coord, spec, CLUSTER_TOML, new, NOW)
    assert plan.changed
    assert any(line.startswith("+[resources.extra]") for line in plan.diff)
    assert any(a.resource == "extra" for a in plan.transition.actions)
    assert await config_apply.apply_config(coord, spec, CLUSTER_TOML, new, lambda: False, NOW) == 1
    assert await store.stored_config() is None
    assert await config_apply.apply_config(coord, spec, CLUSTER_TOML, new, lambda: True, NOW) == 0
    assert await store.stored_config() == new.read_text()
    # The same file again: nothing to apply, nothing asked.
    assert await config_apply.apply_config(coord, spec, CLUSTER_TOML, new, lambda: False, NOW) == 0


async def test_config_apply_never_shows_a_fence_password(
    coord: LocalCoordinator, spec: ClusterSpec, tmp_path: Path
) -> None:
    device = '[fencing.devices.ipmi]\nagent = "fence_ipmilan"\nparams = {{ passwd = "{}" }}\n'
    old, new = tmp_path / "old.toml", tmp_path / "new.toml"
    old.write_text(CLUSTER_TOML + device.format("hunter2-old"))
    new.write_text(CLUSTER_TOML + device.format("hunter2-new"))
    current = load_spec(old)
    plan = await config_apply.prepare(coord, current, old.read_text(), new, NOW)
    assert any(line.startswith("+") and "passwd" in line for line in plan.diff)
    assert not [line for line in plan.diff if "hunter2" in line]


async def test_config_apply_loses_to_a_concurrent_apply(
    coord: LocalCoordinator, store: ClusterStore, spec: ClusterSpec, tmp_path: Path
) -> None:
    new = tmp_path / "new.toml"
    new.write_text(CLUSTER_TOML.replace("score = 100", "score = 50"))
    plan = await config_apply.prepare(coord, spec, CLUSTER_TOML, new, NOW)
    await coord.put(KEYS.config, b"# someone else's")
    assert not await config_apply.write(coord, spec, plan)


# --- end to end through typer ------------------------------------------------------------------


def test_move_command_unknown_resource_exits_2_and_writes_nothing(
    use_local: None, coord: LocalCoordinator, config_file: Path
) -> None:
    before = coord.state.revision
    result = runner.invoke(app, ["resource", "move", "nope", "n1", "--config", str(config_file)])
    assert result.exit_code == 2
    assert "unknown resource 'nope'" in result.stderr
    assert "vip" in result.stderr
    assert coord.state.revision == before


def test_ban_command_prints_the_consequences(
    use_local: None, coord: LocalCoordinator, config_file: Path
) -> None:
    asyncio.run(online(coord, "n1", "n2", "n3"))
    asyncio.run(runs(ClusterStore(coord, KEYS), "vip", "n1"))
    result = runner.invoke(app, ["resource", "ban", "vip", "n1", "--config", str(config_file)])
    assert result.exit_code == 0, result.output
    assert "vip banned from n1" in result.stdout
    assert "scheduler: stop vip on n1" in result.stdout


def test_node_and_fence_commands(
    use_local: None, coord: LocalCoordinator, config_file: Path
) -> None:
    cfg = ["--config", str(config_file)]
    assert runner.invoke(app, ["node", "standby", "n1", *cfg]).exit_code == 0
    assert runner.invoke(app, ["node", "maintenance", "n1", "--off", *cfg]).exit_code == 0
    assert runner.invoke(app, ["node", "online", "n9", *cfg]).exit_code == 2
    asyncio.run(online(coord, "n2"))
    refused = runner.invoke(app, ["fence", "n2", "--confirm", *cfg])
    assert refused.exit_code == 2
    assert "is online" in refused.stderr
    no_device = runner.invoke(app, ["fence", "n2", *cfg])
    assert no_device.exit_code == 2
    assert "no fence device is configured" in no_device.stderr


def test_config_apply_command_refuses_without_yes_when_not_interactive(
    use_local: None, coord: LocalCoordinator, config_file: Path, tmp_path: Path
) -> None:
    new = tmp_path / "new.toml"
    new.write_text(CLUSTER_TOML.replace("score = 100", "score = 50"))
    cfg = ["--config", str(config_file)]
    refused = runner.invoke(app, ["config", "apply", str(new), *cfg])
    assert refused.exit_code == 2
    assert "--yes" in refused.stderr
    assert asyncio.run(ClusterStore(coord, KEYS).stored_config()) is None
    done = runner.invoke(app, ["config", "apply", str(new), "--yes", *cfg])
    assert done.exit_code == 0, done.output
    assert "-score = 100" in done.stdout
    assert asyncio.run(ClusterStore(coord, KEYS).stored_config()) == new.read_text()
