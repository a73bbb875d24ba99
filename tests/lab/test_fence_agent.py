"""fence_hakeeper_lab: the fence-agents protocol, and a loopback node really powered off."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hakeeper.agents.procfs import process_start_time
from hakeeper.fencing.device import FenceDevice
from hakeeper.fencing.fence_agents import FenceAgentRunner, parse_metadata_parameters
from hakeeper.lab.fence_agent import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_STATUS_OFF,
    METADATA,
    parse_stdin,
    read_offs,
    run,
    write_target,
)
from hakeeper.lab.loopback import loopback_target


def test_stdin_lines_follow_the_fence_agents_conventions() -> None:
    text = "# comment\noption=off\nplug=n2\nTargets-Dir='/tmp/x'\naction=status\n"
    options = parse_stdin(text)
    assert options == {"action": "status", "plug": "n2", "port": "n2", "Targets_Dir": "/tmp/x"}


def test_metadata_advertises_port_so_the_runner_passes_the_node_name() -> None:
    assert {"port", "plug", "targets_dir", "scope"} <= parse_metadata_parameters(METADATA)


class Node:
    """A fake lab node made of real processes: an "agent" and one resource process group."""

    def __init__(self, base: Path) -> None:
        self.agent = subprocess.Popen(["sleep", "60"], start_new_session=True)
        self.resource = subprocess.Popen(["sleep", "60"], start_new_session=True)
        self.state_dir = base / "n1"
        self.runtime_dir = base / "n1-run"
        (self.state_dir / "agents").mkdir(parents=True)
        self.runtime_dir.mkdir()
        (self.state_dir / "agents" / "web.json").write_text(
            json.dumps(
                {"pid": self.resource.pid, "start_time": process_start_time(self.resource.pid)}
            )
        )
        self.targets = base / "targets"
        write_target(
            self.targets,
            "n1",
            loopback_target(
                self.agent.pid,
                process_start_time(self.agent.pid),
                self.state_dir,
                self.runtime_dir,
            ),
        )

    def close(self) -> None:
        for proc in (self.agent, self.resource):
            proc.kill()
            proc.wait()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    made = Node(tmp_path)
    try:
        yield made
    finally:
        made.close()


def ask(node: Node, action: str, scope: str = "node") -> tuple[int, list[str]]:
    lines: list[str] = []
    options = {"action": action, "port": "n1", "targets_dir": str(node.targets), "scope": scope}
    return run(options, lines.append), lines


def test_status_is_on_while_the_node_runs(node: Node) -> None:
    assert ask(node, "status")[0] == EXIT_OK


def test_off_kills_the_agent_and_its_resources_and_reports_off(node: Node) -> None:
    assert ask(node, "off")[0] == EXIT_OK

    assert node.agent.wait(5) is not None
    assert node.resource.wait(5) is not None
    assert not node.runtime_dir.exists()
    assert ask(node, "status")[0] == EXIT_STATUS_OFF
    assert list(read_offs(node.targets)) == ["n1"]


def test_resources_scope_leaves_the_agent_running(node: Node) -> None:
    assert ask(node, "off", scope="resources")[0] == EXIT_OK

    assert node.resource.wait(5) is not None
    assert node.agent.poll() is None
    assert ask(node, "status", scope="resources")[0] == EXIT_STATUS_OFF


def test_list_names_every_lab_node(node: Node) -> None:
    assert ask(node, "list") == (EXIT_OK, ["n1,"])


def test_an_unknown_node_is_a_failure_not_a_crash(node: Node) -> None:
    code = subprocess.run(
        [sys.executable, "-m", "hakeeper.lab.fence_agent"],
        input=f"action=off\nport=n9\ntargets_dir={node.targets}\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert code.returncode == EXIT_FAILED
    assert "no lab target for node 'n9'" in code.stderr


async def test_the_fence_agent_runner_powers_off_a_node_through_the_console_script(
    node: Node,
) -> None:
    device = FenceDevice("lab", "fence_hakeeper_lab", params={"targets_dir": str(node.targets)})
    runner = FenceAgentRunner()

    result = await runner.run(device, "off", "n1")

    assert result.ok, result.output_tail
    assert node.agent.wait(5) is not None
