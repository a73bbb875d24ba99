"""The namespace lab end to end: real agents in host namespaces, a real VIP, real faults.

One lab (``fast`` profile, fencing through the lab fence device) serves the module; every
fault test starts from the same steady state (all nodes up, the VIP on its preferred n1,
the web clone everywhere) and checks what the client and the sampler saw: the VIP came
back, and no sample ever had two holders. The manual-failback test changes the cluster
config, so it runs last.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from hakeeper.cli.lab import exec_hint
from hakeeper.errors import HakeeperError
from hakeeper.lab.fence_agent import parse_stdin, run
from hakeeper.lab.netns_lab import HTTP_PORT, NetnsLab
from hakeeper.lab.netns_topology import LabLayout, build, existing
from hakeeper.lab.vip_watch import VipWatch
from tests.conftest import require_binary
from tests.lab.conftest import require_root

pytestmark = pytest.mark.slow

WAIT = 60.0


def all_serving(lab: NetnsLab) -> bool:
    """The VIP only on n1 and every node running its agent and its web instance."""
    if lab.holders() != ["n1"]:
        return False
    return all(
        s.agent == "running" and s.processes >= 2 for s in lab.status() if s.host != "client"
    )


def settle(lab: NetnsLab) -> None:
    """Back to steady state. A node restarted before the cluster noticed its loss is fenced
    once more (the STONITH race of a fast reboot): it is healed again until all serve."""

    def healed_and_serving() -> bool:
        for node in lab.layout.nodes:
            if lab.agent_state(node) == "frozen":
                lab.thaw(node)
            lab.heal(node)
        return all_serving(lab)

    try:
        lab.wait("all nodes serving with the VIP on n1", healed_and_serving, WAIT)
    except HakeeperError as exc:
        raise HakeeperError(f"{exc}\n{lab.status()}") from exc


@pytest.fixture
def steady(lab: NetnsLab) -> NetnsLab:
    settle(lab)
    return lab


@pytest.fixture
def watch(steady: NetnsLab) -> Iterator[VipWatch]:
    with VipWatch(steady.layout, HTTP_PORT) as running:
        time.sleep(0.5)  # a baseline of good answers before the fault
        yield running


def moved_from(lab: NetnsLab, node: str) -> bool:
    holders = lab.holders()
    return len(holders) == 1 and holders != [node]


def adopted(lab: NetnsLab, since: dict[str, int]) -> list[bool]:
    """Per node: has its agent logged adopting a config since the log had ``since`` bytes?"""
    found = []
    for node, offset in since.items():
        with lab.log_path(node).open() as log:
            log.seek(offset)
            found.append("event=config_adopted" in log.read())
    return found


def root_links_and_routes() -> tuple[list[str], list[str]]:
    with IPRoute() as ipr:
        links = [str(m.get("IFLA_IFNAME")) for m in ipr.link("dump")]
        routes = [str(m.get("RTA_DST")) for m in ipr.route("dump", family=2)]
    return links, routes


def test_the_root_namespace_gets_no_interface_or_route_into_the_lab(lab: NetnsLab) -> None:
    links, routes = root_links_and_routes()

    assert not [name for name in links if name.startswith(lab.layout.prefix)]
    assert not [dst for dst in routes if dst.startswith("10.77.")]


def test_the_client_reaches_the_vip_on_the_preferred_node(steady: NetnsLab) -> None:
    done = steady.exec("client", [sys.executable, "-c", CURL, steady.vip])

    assert done.stdout.strip() == "web on n1", done.stderr


def test_the_exec_hint_of_lab_up_runs_as_printed(steady: NetnsLab) -> None:
    require_binary("curl")
    words = shlex.split(exec_hint(steady, steady.lab_dir))
    assert words[:3] == ["hakeeper", "lab", "exec"]
    done = subprocess.run(
        [sys.executable, "-m", "hakeeper", *words[1:]],
        capture_output=True, text=True, timeout=WAIT, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "web on n1"


def test_a_crashed_holder_is_fenced_and_the_vip_moves_without_two_holders(
    steady: NetnsLab, watch: VipWatch
) -> None:
    steady.crash("n1")
    fault = time.monotonic()

    answer = watch.wait_served_after(fault, WAIT)
    report = watch.report(fault)

    assert answer is not None, steady.tails()
    assert answer.body in ("web on n2", "web on n3")
    assert report.dual_samples == 0
    assert report.outage is not None


def test_a_healed_node_gets_the_vip_back_automatically(steady: NetnsLab, watch: VipWatch) -> None:
    steady.crash("n1")
    steady.wait("the VIP to leave n1", lambda: moved_from(steady, "n1"), WAIT)
    healed = time.monotonic()

    steady.heal("n1")
    steady.wait("the VIP back on n1", lambda: steady.holders() == ["n1"], WAIT)
    time.sleep(0.3)

    assert watch.served_after(time.monotonic() - 0.3) is not None
    assert watch.longest_gap(healed, time.monotonic()) < 10.0
    assert watch.dual_samples() == 0


def test_a_frozen_agent_is_fenced_and_the_vip_moves(steady: NetnsLab, watch: VipWatch) -> None:
    steady.freeze("n1")
    # n1's web server keeps answering on the VIP while only its agent is frozen.
    steady.wait("the VIP to leave n1", lambda: moved_from(steady, "n1"), WAIT)
    moved = time.monotonic()

    answer = watch.wait_served_after(moved, WAIT)

    assert steady.agent_state("n1") == "gone"  # fenced: the frozen agent was killed
    assert answer is not None, steady.tails()
    assert answer.body in ("web on n2", "web on n3")
    assert watch.dual_samples() == 0


def assert_n1_dropped_the_vip_before_the_majority_raised_it(
    lab: NetnsLab, watch: VipWatch, fault: float
) -> None:
    lab.wait("the majority to raise the VIP", lambda: moved_from(lab, "n1"), WAIT)
    time.sleep(0.1)

    dropped = watch.first_sample(fault, lambda s: "n1" not in s.holders)
    raised = watch.first_sample(fault, lambda s: any(h != "n1" for h in s.holders))
    assert dropped is not None
    assert raised is not None
    assert dropped.at < raised.at
    assert watch.dual_samples() == 0


def test_an_isolated_holder_drops_the_vip_before_the_majority_raises_it(
    steady: NetnsLab, watch: VipWatch
) -> None:
    log_before = steady.log_path("n1").stat().st_size
    steady.isolate("n1")
    fault = time.monotonic()
    assert_n1_dropped_the_vip_before_the_majority_raised_it(steady, watch, fault)
    with steady.log_path("n1").open() as log:
        log.seek(log_before)
        # n1's own agent stopped it on losing quorum (rule 1), not only the fence after.
        assert "resource=vip op=stop rc=0" in log.read()


def test_the_lab_fence_agent_powers_off_a_netns_host(steady: NetnsLab) -> None:
    options = f"port=n3\ntargets_dir={steady.lab_dir / 'fence'}\n"
    printed: list[str] = []

    assert run(parse_stdin(options + "action=status\n"), printed.append) == 0
    assert run(parse_stdin(options + "action=off\n"), printed.append) == 0
    assert run(parse_stdin(options + "action=status\n"), printed.append) == 2
    assert steady.status()[2].processes == 0
    assert not steady.status()[2].port_up


def test_with_suspicion_an_isolated_holder_is_fenced_before_its_lease_and_never_doubled(
    steady: NetnsLab,
) -> None:
    steady.start_cluster("fast", suspect_after=0.3)
    try:
        settle(steady)
        with VipWatch(steady.layout, HTTP_PORT) as watch:
            time.sleep(0.5)
            steady.isolate("n1")
            fault = time.monotonic()
            assert_n1_dropped_the_vip_before_the_majority_raised_it(steady, watch, fault)
        assert steady.agent_state("n1") == "gone", "the power fence left n1's agent running"
        assert any("event=node_suspected node=n1" in steady.log_path(n).read_text()
                   for n in ("n2", "n3"))  # fmt: skip
    finally:
        steady.start_cluster("fast")


def test_manual_failback_keeps_the_vip_where_it_went_until_moved(steady: NetnsLab) -> None:
    manual = steady.lab_dir / "manual.toml"
    text = steady.config_path.read_text().replace('failback = "auto"', 'failback = "manual"')
    manual.write_text(text)
    hakeeper = [sys.executable, "-m", "hakeeper"]
    config = ["--config", str(steady.config_path)]
    logs = {n: steady.log_path(n).stat().st_size for n in steady.layout.nodes}
    applied = steady.exec("n2", [*hakeeper, "config", "apply", str(manual), *config, "--yes"])
    assert applied.returncode == 0, applied.stdout + applied.stderr
    steady.wait("every agent to adopt it", lambda: all(adopted(steady, logs)), WAIT)

    steady.crash("n1")
    steady.wait("the VIP to leave n1", lambda: moved_from(steady, "n1"), WAIT)
    holder = steady.holders()
    steady.heal("n1")
    steady.wait("n1 back with its web instance", lambda: steady.status()[0].processes >= 2, WAIT)
    time.sleep(3.0)
    assert steady.holders() == holder

    moved = steady.exec("n2", [*hakeeper, "resource", "move", "vip", "n1", *config])
    assert moved.returncode == 0, moved.stdout + moved.stderr
    steady.wait("the VIP moved back to n1", lambda: steady.holders() == ["n1"], WAIT)
    cleared = steady.exec("n2", [*hakeeper, "resource", "clear", "vip", *config])
    assert cleared.returncode == 0, cleared.stdout + cleared.stderr


def test_lab_down_removes_every_namespace_and_link(lab_dir: Path) -> None:
    require_root()
    lab = NetnsLab.create(lab_dir, nodes=2, client=True, start_agents=False)
    prefix = lab.layout.prefix
    assert len(existing(prefix)) == 4

    NetnsLab.load(lab_dir).down()

    assert existing(prefix) == []
    assert not [n for n in root_links_and_routes()[0] if n.startswith(prefix)]
    assert not (lab_dir / "lab.json").exists()


def test_lab_down_sweeps_what_a_crashed_build_left(lab_dir: Path) -> None:
    require_root()
    layout = LabLayout.create(2, client=False)
    lab = NetnsLab(lab_dir, layout)
    lab.save()  # what create() writes before it builds anything
    build(layout)  # then "crashes" without recording more

    NetnsLab.load(lab_dir).down()

    assert existing(layout.prefix) == []


CURL = """
import sys, urllib.request
print(urllib.request.urlopen(f"http://{sys.argv[1]}:8080/", timeout=5).read().decode())
"""
