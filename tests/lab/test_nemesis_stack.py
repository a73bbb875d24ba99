"""The nemesis stack's files load as the cluster and the balancer will load them, and the
agents' logs name the controller and the Raft leader (without a lab: files and fakes)."""

from __future__ import annotations

from pathlib import Path

from hakeeper.balancer.config import load_config
from hakeeper.config.loader import load_spec
from hakeeper.lab.cluster_secret import lab_secret_file
from hakeeper.lab.nemesis_stack import BALANCER_FILE, LogReader, balancer_file, stack_sections
from hakeeper.lab.netns_lab import NetnsLab, lab_config
from hakeeper.lab.netns_topology import LabLayout

START = "ts=1 level=INFO logger=x event=crm_tools_listening path=/x\n"


def make_lab(tmp_path: Path) -> NetnsLab:
    return NetnsLab(tmp_path, LabLayout.create(3, client=True))


def test_the_stacks_cluster_file_and_balancer_file_load(tmp_path: Path) -> None:
    lab = make_lab(tmp_path)
    text = lab_config(lab.layout, tmp_path, secret_file=lab_secret_file(tmp_path),
                      profile="fast", failback="auto", no_quorum_policy="demote")  # fmt: skip
    lab.config_path.write_text(text + stack_sections(lab, tmp_path / "run"))
    (tmp_path / BALANCER_FILE).write_text(balancer_file(lab))

    spec = load_spec(lab.config_path)
    balancer = load_config(tmp_path / BALANCER_FILE)

    assert {"vip", "web", "lb", "store", "singleton"} <= {p.id for p in spec.primitives}
    assert {c.id for c in spec.clones} >= {"web-clone", "sessions"}
    assert spec.options.no_quorum_policy == "demote"
    assert [f.bind for f in balancer.frontend] == [f"{lab.vip}:80", f"{lab.vip}:11211"]


class Logs:
    """Agents' logs on disk, with agents that are all running."""

    def __init__(self, lab: NetnsLab) -> None:
        self.lab = lab
        lab.agent_state = lambda node: "running"  # type: ignore[method-assign]

    def write(self, node: str, *lines: str) -> None:
        with self.lab.log_path(node).open("a") as log:
            log.writelines(f"ts=1 level=INFO logger=x {line}\n" for line in lines)


def test_the_controller_is_the_running_agent_of_the_highest_term(tmp_path: Path) -> None:
    lab = make_lab(tmp_path)
    logs = Logs(lab)
    logs.write("n1", "event=controller_start node=n1 term=4")
    logs.write("n2", "event=controller_start node=n2 term=9")
    reader = LogReader(lab)

    assert reader.controller() == "n2"


def test_the_raft_leader_is_the_one_agent_whose_last_state_is_leader(tmp_path: Path) -> None:
    lab = make_lab(tmp_path)
    logs = Logs(lab)
    logs.write("n1", "event=raft_state from=candidate to=leader")
    reader = LogReader(lab)
    assert reader.raft_leader() == "n1"

    logs.write("n1", "event=raft_state from=leader to=follower")
    logs.write("n3", "event=raft_state from=candidate to=leader")

    assert reader.raft_leader() == "n3"
    assert sum(v.leaderships for v in reader.read().values()) == 2


def test_a_restarted_agent_is_no_longer_the_leader_it_was(tmp_path: Path) -> None:
    lab = make_lab(tmp_path)
    logs = Logs(lab)
    logs.write("n1", "event=raft_state from=candidate to=leader")
    logs.write("n2", "event=raft_state from=candidate to=leader")
    reader = LogReader(lab)
    assert reader.raft_leader() is None  # two claim it: nobody is named

    with lab.log_path("n1").open("a") as log:
        log.write(START)

    assert reader.raft_leader() == "n2"


def test_a_half_written_line_waits_for_its_end(tmp_path: Path) -> None:
    lab = make_lab(tmp_path)
    Logs(lab)
    with lab.log_path("n1").open("a") as log:
        log.write("ts=1 event=raft_state from=candidate to=lea")
    reader = LogReader(lab)
    assert reader.raft_leader() is None

    with lab.log_path("n1").open("a") as log:
        log.write("der\n")

    assert reader.raft_leader() == "n1"
