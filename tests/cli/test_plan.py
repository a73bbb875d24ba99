"""`hakeeper plan` and `hakeeper config validate` through typer's CliRunner."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from hakeeper.cli import config_cmd
from hakeeper.cli.main import app as main_app
from hakeeper.cli.plan import plan
from tests.cli.conftest import online
from tests.fakes import LocalCoordinator

EXAMPLES = Path(__file__).parents[2] / "examples" / "cluster"
CONFIG = str(EXAMPLES / "cluster.toml")
STATE = str(EXAMPLES / "state.json")

app = typer.Typer()
app.command(name="plan")(plan)
app.add_typer(config_cmd.app, name="config")
runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_plan_of_the_steady_example_has_nothing_to_do() -> None:
    code, out = run("plan", CONFIG, "--state", STATE)
    assert code == 0
    assert "nothing to do" in out


def test_plan_what_if_node_down_fences_then_promotes() -> None:
    code, out = run("plan", CONFIG, "--state", STATE, "--what-if", "node n1 down", "--json")
    assert code == 0
    lines = [a["action"] for a in json.loads(out)["actions"]]
    assert lines[0] == "fence n1"
    assert "promote pg on n3" in lines
    assert "start vip on n3" in lines


def test_plan_what_if_resource_failure_restarts_it() -> None:
    code, out = run(
        "plan", CONFIG, "--state", STATE, "--what-if", "resource web fails on n2", "--json"
    )
    assert code == 0
    lines = [a["action"] for a in json.loads(out)["actions"]]
    assert lines[:2] == ["stop web on n2", "start web on n2"]


def test_plan_table_names_the_actions_and_the_decisions() -> None:
    code, out = run("plan", CONFIG, "--state", STATE, "--what-if", "node n1 down")
    assert code == 0
    assert "fence n1" in out
    assert "decisions" in out


def test_plan_without_state_starts_a_fresh_cluster() -> None:
    code, out = run("plan", CONFIG, "--json")
    assert code == 0
    actions = json.loads(out)["actions"]
    assert "start" in {a["kind"] for a in actions}
    # pg is a notify clone (PAF): as in Pacemaker, nothing is promoted before its agent
    # reports a promotion score, so a fresh cluster starts its instances unpromoted.
    pg = {a["kind"] for a in actions if a["resource"] == "pg"}
    assert "start" in pg
    assert "promote" not in pg


def test_plan_dot_is_graphviz() -> None:
    code, out = run("plan", CONFIG, "--state", STATE, "--what-if", "node n1 down", "--dot")
    assert code == 0
    assert out.startswith('digraph "shop"')
    assert "->" in out


def test_plan_json_lists_dependencies_by_index() -> None:
    _, out = run("plan", CONFIG, "--state", STATE, "--what-if", "node n1 down", "--json")
    actions = json.loads(out)["actions"]
    for action in actions:
        assert all(dep < action["id"] for dep in action["needs"])


def test_plan_rejects_an_unknown_question_with_the_forms_it_knows() -> None:
    code, out = run("plan", CONFIG, "--what-if", "node n1 explodes")
    assert code == 2
    assert "not understood" in out
    assert "resource R fails on N" in out


def test_plan_rejects_an_unknown_node_in_a_question() -> None:
    code, out = run("plan", CONFIG, "--what-if", "node n9 down")
    assert code == 2
    assert "no node 'n9'" in out


def test_plan_rejects_a_bad_state_file(tmp_path: Path) -> None:
    bad = tmp_path / "state.json"
    bad.write_text('{"nodes": {"n1": {"status": "sleeping"}}}')
    code, out = run("plan", CONFIG, "--state", str(bad))
    assert code == 2
    assert "nodes.n1.status: 'sleeping' is not one of online, offline, lost" in out


def test_plan_shows_the_retraction_the_states_assignment_calls_for(tmp_path: Path) -> None:
    state = json.loads(Path(STATE).read_text())
    state["instances"] = [i for i in state["instances"] if i["resource"] != "vip"]
    state["assignments"] = [{"resource": "vip", "placements": [{"node": "n2"}]}]
    path = tmp_path / "state.json"
    path.write_text(json.dumps(state))
    code, out = run("plan", CONFIG, "--state", str(path), "--json")
    assert code == 0
    actions = json.loads(out)["actions"]
    lines = [a["action"] for a in actions]
    assert lines[:2] == ["retract vip on n2", "start vip on n1"]
    assert actions[1]["needs"] == [0]


def test_config_validate_accepts_the_example() -> None:
    code, out = run("config", "validate", CONFIG)
    assert code == 0
    assert "valid" in out


def test_config_validate_lists_every_problem_with_its_key(tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text(
        "[nodes.n1]\n[resources.web]\nagent = 'process'\n"
        "ops.monitor = { interval = '5x' }\n"
        "[[constraints.colocation]]\nresource = 'web'\nwith = 'ip'\n"
    )
    code, out = run("config", "validate", str(path))
    assert code == 2
    assert f'{path}: resources.web.ops.monitor.interval: "5x" is not a duration' in out


@pytest.mark.parametrize("question", ["node n2 standby", "quorum lost", "wait 10m"])
def test_plan_accepts_each_question_form(question: str) -> None:
    code, _ = run("plan", CONFIG, "--state", STATE, "--what-if", question)
    assert code == 0


def test_plan_live_starts_from_the_running_cluster_and_answers_what_if(
    use_local: None, coord: LocalCoordinator, config_file: Path
) -> None:
    asyncio.run(online(coord, "n1", "n2", "n3"))
    live = runner.invoke(main_app, ["plan", str(config_file), "--live"])
    assert live.exit_code == 0, live.output
    assert "start vip on n1" in live.stdout

    down = runner.invoke(
        main_app, ["plan", str(config_file), "--live", "--what-if", "node n1 down"]
    )
    assert down.exit_code == 0, down.output
    assert "start vip on n1" not in down.stdout


def test_a_held_promotion_prints_its_cleanup_naming_the_cluster_file(tmp_path: Path) -> None:
    config = tmp_path / "cluster.toml"
    config.write_text(
        '[nodes.n1]\naddress = "10.0.0.11"\n[nodes.n2]\naddress = "10.0.0.12"\n'
        '[resources.store]\nagent = "ocf:heartbeat:Stateful"\non_fail = "demote"\n'
        'failure_timeout = "30s"\n[clones.sessions]\nresource = "store"\npromotable = true\n'
    )
    state = tmp_path / "state.json"
    state.write_text(
        json.dumps(
            {
                "now": 20.0,
                "nodes": {"n1": {}, "n2": {}},
                "instances": [
                    {"resource": "store", "node": n, "role": "started"} for n in ("n1", "n2")
                ],
                "failcounts": [{"resource": "store", "node": "n1", "count": 1, "last_failure": 9}],
                "promotion_scores": {"store": {"n1": 20, "n2": 10}},
            }
        )
    )
    code, out = run("plan", str(config), "--state", str(state))
    assert code == 0, out
    assert f"clear it with: hakeeper resource cleanup store n1 --config {config}" in out
