"""`hakeeper demo`: a real 3-node hakeeper cluster on this machine, no root needed.

``hakeeper demo`` (= ``demo up``) starts one ``hakeeper agent`` process per node on its own
loopback address (n1..n3 = 127.0.0.11..13), with an example HTTP app as an active/active
clone (``web``) and an exclusive ``singleton`` that prefers n1, prints how to reach them and
shows ``status --watch`` until Ctrl-C. From another terminal, ``hakeeper demo kill n1`` /
``revive n1`` / ``status`` / ``down`` act on it. ``demo --no-watch`` instead runs a scripted
tour (a hung node fenced, failover, failback) and exits: what ``make demo`` runs, CI-safe.

``hakeeper demo coord`` is the older demo of the coordination layer alone: three embedded-Raft
members, the leader killed with SIGKILL, the survivors electing a new one without losing a
write.

Fencing is on, through ``fence_hakeeper_lab``: a fence device speaking the fence-agents
protocol whose "power off" kills the node's agent and every process its resources started.
The controller runs it exactly as it would run ``fence_ipmilan``, before it recovers a lost
node's exclusive resource.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hakeeper.agents.procfs import process_start_time
from hakeeper.cli.status import render, watch_status
from hakeeper.coord.base import Coordinator
from hakeeper.errors import CoordError, HakeeperError
from hakeeper.lab.fence_agent import read_offs, write_target
from hakeeper.lab.loopback import (
    HttpProbe,
    LoopbackCluster,
    crash_node,
    free_port_on,
    launch_agent,
    loopback_target,
)
from hakeeper.lab.raft_cluster import RaftCluster
from hakeeper.model.timing import profile as timing_profile
from hakeeper.runtime.status_report import collect_status

console = Console()

ACTIONS = ("up", "coord", "kill", "revive", "status", "down")
NODES = ("n1", "n2", "n3")
#: Every wait of the demo ends by itself; generous for a loaded 2-core machine.
STEP_TIMEOUT = 60.0


def demo_dir() -> Path:
    """Fixed, so that ``demo kill`` in another terminal finds the cluster ``demo up`` runs."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "hakeeper-demo"
    return Path(f"/tmp/hakeeper-demo-{os.getuid()}")


def demo(
    action: Annotated[
        str, typer.Argument(help="up (default), coord, kill, revive, status or down.")
    ] = "up",
    node: Annotated[str | None, typer.Argument(help="kill/revive: n1, n2 or n3.")] = None,
    no_watch: Annotated[
        bool,
        typer.Option(
            "--no-watch", help="up: run a scripted failover/failback tour and exit (CI-safe)."
        ),
    ] = False,
    profile: Annotated[
        str, typer.Option(help="Timing profile: fast, default, wan (coord default: default).")
    ] = "",
) -> None:
    """A 3-node cluster on loopback: `demo` (up), `demo kill n1`, `demo revive n1`,
    `demo status`, `demo down`; `demo --no-watch` tours failover and failback and exits;
    `demo coord` shows the coordination layer alone."""
    if action not in ACTIONS:
        console.print(f"[red]unknown demo action {action!r}[/red]; use one of {', '.join(ACTIONS)}")
        raise typer.Exit(2)
    if action in ("kill", "revive") and node not in NODES:
        console.print(f"[red]demo {action} needs a node:[/red] {', '.join(NODES)}")
        raise typer.Exit(2)
    try:
        if action == "coord":
            with tempfile.TemporaryDirectory(prefix="hakeeper-demo-") as base:
                asyncio.run(_coord_demo(Path(base), profile or "default"))
        elif action == "up":
            _up(profile or "fast", watch=not no_watch)
        elif action == "kill":
            assert node is not None
            asyncio.run(_kill(node))
        elif action == "revive":
            assert node is not None
            _revive(node)
        elif action == "status":
            _status()
        else:
            _down()
    except HakeeperError as exc:
        console.print(f"[red]demo failed:[/red] {exc}")
        raise typer.Exit(1) from exc


# --- the cluster demo ----------------------------------------------------------------------


def demo_resources(web_port: int, singleton_port: int) -> str:
    app = f"{sys.executable} -m hakeeper.lab.http_app"
    return f"""
# An active/active clone: one instance per node, each on its own node's address.
[resources.web]
agent = "process"
params = {{ command = "{app} --port {web_port} --name web" }}
ops.monitor = {{ interval = "1s", timeout = "5s" }}
exclusive = false

[clones.web-clone]
resource = "web"

# Exclusive: never on two nodes at once, so not restarted elsewhere before its node is fenced.
[resources.singleton]
agent = "process"
params = {{ command = "{app} --port {singleton_port} --name singleton" }}
ops.monitor = {{ interval = "1s", timeout = "5s" }}

[[constraints.location]]
resource = "singleton"
node = "n1"
score = 100
"""


def _state_file(base: Path) -> Path:
    return base / "demo.json"


def _read_state(base: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(_state_file(base).read_text())
    except (OSError, ValueError):
        return None
    return data


def _write_state(base: Path, data: dict[str, Any]) -> None:
    tmp = _state_file(base).with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(_state_file(base))


def _alive(pid: object, start_time: object) -> bool:
    return isinstance(pid, int) and process_start_time(pid) == start_time


def _crash_recorded(data: dict[str, Any], node: str) -> None:
    entry = data["nodes"][node]
    crash_node(
        Path(entry["state_dir"]), Path(entry["runtime_dir"]), entry["pid"], entry["start_time"]
    )
    entry["pid"] = entry["start_time"] = None


def _clean_stale(base: Path) -> None:
    """A previous demo that died without tearing down: stop what it recorded, by PID."""
    data = _read_state(base)
    if data is not None:
        if _alive(data.get("up_pid"), data.get("up_start_time")):
            raise HakeeperError(
                f"a demo is already running (pid {data['up_pid']}); "
                "use `hakeeper demo status`, or `hakeeper demo down` to stop it"
            )
        for node in data.get("nodes", {}):
            _crash_recorded(data, node)
    shutil.rmtree(base, ignore_errors=True)


def _up(profile: str, *, watch: bool) -> None:
    base = demo_dir()
    _clean_stale(base)
    # Ctrl-C (or `demo down`'s SIGTERM) is the way out of the live view; the teardown has run
    # in _up_async's finally by the time these arrive here.
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(_up_async(base, profile, watch=watch))


async def _up_async(base: Path, profile: str, *, watch: bool) -> None:
    addresses = [f"127.0.0.{10 + i}" for i in range(1, 4)]
    web_port = free_port_on(addresses)
    singleton_port = free_port_on(addresses)
    while singleton_port == web_port:
        singleton_port = free_port_on(addresses)
    cluster = LoopbackCluster(
        base,
        demo_resources(web_port, singleton_port),
        name="demo",
        profile=profile,
        fence_device=True,
        failback="auto",
    )
    # `demo down` from another terminal sends SIGTERM: end like Ctrl-C, tearing down.
    main = asyncio.current_task()
    assert main is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
    console.rule("[bold]hakeeper demo: a 3-node cluster on loopback")
    console.print(
        f"directory {base}\nprofile [bold]{profile}[/bold], fencing through fence_hakeeper_lab, "
        "failback auto; "
        "starting 3 agents (n1..n3 on 127.0.0.11..13)"
    )
    started = time.monotonic()
    try:
        await cluster.start()
        _record_up(cluster, web_port, singleton_port)
        await cluster.wait_for(
            "web on all three nodes and the singleton on n1",
            lambda o: o.running_on("web") == list(NODES) and o.running_on("singleton") == ["n1"],
            timeout=STEP_TIMEOUT,
        )
        console.print(f"everything runs after {time.monotonic() - started:.1f} s\n")
        _print_access(cluster, web_port, singleton_port)
        if watch:
            console.print(
                "\n[dim]live status below; Ctrl-C stops the demo and all its processes[/dim]"
            )
            store = await cluster.store()
            await watch_status(store, cluster.spec, console)
        else:
            await _tour(cluster, singleton_port)
    finally:
        await _teardown(cluster)


def _record_up(cluster: LoopbackCluster, web_port: int, singleton_port: int) -> None:
    """What `demo kill/revive/status/down` in another terminal need: PIDs with their start
    times (so nothing but these very processes is ever signalled), argv, env, paths."""
    nodes: dict[str, Any] = {}
    for node in cluster.names:
        pid = cluster.pid(node)
        nodes[node] = {
            "address": cluster.address[node],
            "pid": pid,
            "start_time": process_start_time(pid) if pid is not None else None,
            "argv": cluster.agent_argv(node),
            "env": cluster.agent_env(node),
            "log": str(cluster.log_path(node)),
            "state_dir": str(cluster.state_dir(node)),
            "runtime_dir": str(cluster.runtime_dir(node)),
        }
    _write_state(
        cluster.base_dir,
        {
            "up_pid": os.getpid(),
            "up_start_time": process_start_time(os.getpid()),
            "config": str(cluster.config_path),
            "web_port": web_port,
            "singleton_port": singleton_port,
            "targets_dir": str(cluster.targets_dir),
            "nodes": nodes,
        },
    )


async def _teardown(cluster: LoopbackCluster) -> None:
    # Agents revived from another terminal are not this process's children: stop them from
    # the PIDs recorded in the state file (checked against their start time).
    data = _read_state(cluster.base_dir)
    await asyncio.shield(cluster.close())
    if data is not None:
        for node, entry in data["nodes"].items():
            if entry["pid"] is not None and entry["pid"] != cluster.pid(node):
                _crash_recorded(data, node)
    _state_file(cluster.base_dir).unlink(missing_ok=True)
    console.print("demo stopped: all agents and resource processes killed, by PID")


def _print_access(cluster: LoopbackCluster, web_port: int, singleton_port: int) -> None:
    table = Table("service", "URLs")
    table.add_row(
        "web (clone, every node)",
        "  ".join(f"http://{a}:{web_port}/" for a in cluster.address.values()),
    )
    table.add_row(
        "singleton (one node, prefers n1)",
        "  ".join(f"http://{a}:{singleton_port}/" for a in cluster.address.values())
        + "\n(only the node running it answers)",
    )
    console.print(table)
    console.print(
        "try, from another terminal:\n"
        f"  curl http://127.0.0.11:{singleton_port}/\n"
        "  hakeeper demo kill n1      # power-cut n1; the singleton moves\n"
        "  hakeeper demo revive n1    # n1 comes back; the singleton returns to it\n"
        "  hakeeper demo status       # one status screen\n"
        f"  hakeeper status --watch --config {shlex.quote(str(cluster.config_path))}\n"
        "  hakeeper demo down         # stop everything"
    )


async def _show(cluster: LoopbackCluster) -> None:
    store = await cluster.store()
    report = await collect_status(store, cluster.spec, time.time())
    console.print(render(report))


async def _tour(cluster: LoopbackCluster, singleton_port: int) -> None:
    """Hang the singleton's node, watch it fenced and the singleton fail over, revive it,
    fail back."""
    await _show(cluster)
    probe = HttpProbe(list(cluster.address.values()), singleton_port)
    probe.start()
    try:
        await probe.wait_served_after(time.monotonic(), STEP_TIMEOUT)
        await asyncio.sleep(1.0)
        holder = (await cluster.observe()).running_on("singleton")[0]
        console.rule(f"[bold red]{holder} hangs[/bold red]")
        console.print(
            f"SIGSTOP of {holder}'s agent (pid {cluster.pid(holder)}): it stops renewing its "
            "lease, but the singleton it started still runs. Starting it elsewhere now would "
            "make two holders; the cluster must fence first"
        )
        hung = time.monotonic()
        cluster.freeze(holder)
        moved = await cluster.wait_for(
            "the singleton to run elsewhere",
            lambda o: len(o.running_on("singleton")) == 1 and o.running_on("singleton") != [holder],
            timeout=STEP_TIMEOUT,
        )
        new_holder = moved.running_on("singleton")[0]
        await probe.wait_served_after(time.monotonic(), STEP_TIMEOUT)
        # The hung node's singleton kept answering until the fence: the outage runs from its
        # last answer to the new holder's first.
        old_last = max(a for s, a, b in probe.good if b.endswith(f"on {holder}"))
        new_first = min(a for s, a, b in probe.good if b.endswith(f"on {new_holder}"))
        offs = [t for t in read_offs(cluster.targets_dir).get(holder, []) if t > hung]
        fenced = f"{offs[0] - hung:.2f} s after the hang" if offs else "(no record)"
        console.print(
            f"[bold]fenced:[/bold] the controller ran fence_hakeeper_lab off for {holder} "
            f"(its agent and resources killed, confirmed off {fenced})\n"
            f"[bold green]failover:[/bold green] singleton now on {new_holder}; the hung "
            f"node's copy answered until {old_last - hung:.2f} s after the hang, the new one "
            f"from {new_first - hung:.2f} s: client-observed outage {new_first - old_last:.2f} s "
            "(10 ms probe of all three addresses)"
        )
        await _show(cluster)

        console.rule(f"[bold]reviving {holder}[/bold]")
        revived = time.monotonic()
        await cluster.revive(holder)
        back = await cluster.wait_for(
            f"the singleton back on {holder}",
            lambda o: o.running_on("singleton") == [holder] and holder in o.running_on("web"),
            timeout=STEP_TIMEOUT,
        )
        await probe.wait_served_after(time.monotonic(), STEP_TIMEOUT)
        console.print(
            f"[bold green]failback:[/bold green] singleton back on {holder} "
            f"{time.monotonic() - revived:.2f} s after the revive (failback = auto, location "
            f"prefers n1); web on {', '.join(back.running_on('web'))}"
        )
        await _show(cluster)
    finally:
        await probe.stop()


# --- acting on a running demo from another terminal -----------------------------------------


def _running_state() -> dict[str, Any]:
    data = _read_state(demo_dir())
    if data is None or not _alive(data.get("up_pid"), data.get("up_start_time")):
        raise HakeeperError(f"no demo is running (in {demo_dir()}); start one with `hakeeper demo`")
    return data


async def _kill(node: str) -> None:
    data = _running_state()
    entry = data["nodes"][node]
    if not _alive(entry["pid"], entry["start_time"]):
        raise HakeeperError(f"{node} is already down; `hakeeper demo revive {node}` restarts it")
    console.print(
        f"power cut of {node}: SIGKILL of its agent (pid {entry['pid']}) and of the process "
        "groups its resources started (each PID checked against its recorded start time)"
    )
    _crash_recorded(data, node)
    _write_state(demo_dir(), data)
    console.print(
        f"once {node}'s lease expires the controller fences it through fence_hakeeper_lab "
        "(finding it off already) and only then starts its exclusive resources elsewhere"
    )


def _revive(node: str) -> None:
    base = demo_dir()
    data = _running_state()
    entry = data["nodes"][node]
    if _alive(entry["pid"], entry["start_time"]):
        raise HakeeperError(f"{node} is running (pid {entry['pid']}); kill it first")
    Path(entry["runtime_dir"]).mkdir(parents=True, exist_ok=True)
    pid, start_time = launch_agent(entry["argv"], entry["env"], Path(entry["log"]))
    entry["pid"], entry["start_time"] = pid, start_time
    _write_state(base, data)
    # The fence device must power off this agent now, not the dead one.
    write_target(
        Path(data["targets_dir"]),
        node,
        loopback_target(pid, start_time, Path(entry["state_dir"]), Path(entry["runtime_dir"])),
    )
    console.print(
        f"{node}'s agent restarted (pid {pid}); it rejoins, and the singleton fails back to "
        "n1 if that is the node"
    )


def _status() -> None:
    from hakeeper.cli.status import status as status_cmd

    data = _running_state()
    status_cmd(config=Path(data["config"]))


def _down() -> None:
    base = demo_dir()
    data = _read_state(base)
    if data is None:
        console.print("no demo is running")
        return
    if _alive(data.get("up_pid"), data.get("up_start_time")):
        os.kill(data["up_pid"], signal.SIGTERM)  # it tears down itself, then removes the file
        deadline = time.monotonic() + STEP_TIMEOUT
        while _state_file(base).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _state_file(base).exists():
            console.print("demo stopped")
            return
        data = _read_state(base) or data
    for node in data["nodes"]:
        _crash_recorded(data, node)
    _state_file(base).unlink(missing_ok=True)
    console.print("demo stopped: its agents and resource processes killed, by PID")


# --- the coordination-layer demo ------------------------------------------------------------


async def _coord_demo(base: Path, profile: str) -> None:
    timing = timing_profile(profile)
    cluster = RaftCluster(3, base_dir=base, timing=timing)
    console.rule("[bold]hakeeper demo: the coordination layer (embedded Raft)")
    console.print(f"starting 3 members on loopback, profile [bold]{profile}[/bold] "
                  f"(election timeout {timing.election_min}-{timing.election_max} s)")  # fmt: skip
    started = time.monotonic()
    async with cluster:
        client = await cluster.client()
        leader = await cluster.leader()
        console.print(f"members agreed in {time.monotonic() - started:.2f} s")
        _members(cluster, leader)

        lease = await client.grant(timing.member_ttl)
        await client.put("/hakeeper/demo/members/node-a", b"alive", lease)
        written = [await client.put("/hakeeper/demo/counter", str(i).encode()) for i in range(50)]
        console.print(f"wrote 50 values (revisions {written[0]}..{written[-1]}) and a key "
                      f"held by a {lease.ttl:g} s lease")  # fmt: skip

        console.print(f"\n[bold red]kill -9[/bold red] the leader {leader} "
                      f"(pid {cluster.pid(leader)})")  # fmt: skip
        killed_at = time.monotonic()
        cluster.kill(leader)
        revision = await _first_write(client, "/hakeeper/demo/counter", b"after")
        console.print(f"first write after the kill acknowledged in "
                      f"[bold]{(time.monotonic() - killed_at) * 1000:.0f} ms[/bold] "
                      f"at revision {revision}")  # fmt: skip
        new_leader = await cluster.leader()
        _members(cluster, new_leader)
        kv = await client.get("/hakeeper/demo/counter")
        assert kv is not None
        console.print(f"counter: value {kv.value.decode()!r}, version {kv.version} "
                      "(51 writes, none lost)")  # fmt: skip
        renewed = await client.keepalive(lease)
        console.print(f"lease renewed across the leader change: {renewed}")

        console.print(f"\nrestarting {leader} from its data directory")
        await cluster.restart(leader)
        await asyncio.sleep(2 * timing.election_max)
        await client.put("/hakeeper/demo/back", b"1")
        _members(cluster, await cluster.leader())
    console.print("\nall members stopped; see docs/architecture.md for what runs where.")


async def _first_write(client: Coordinator, key: str, value: bytes) -> int:
    while True:
        try:
            return await client.put(key, value)
        except CoordError:
            await asyncio.sleep(0.01)


def _members(cluster: RaftCluster, leader: str) -> None:
    table = Table("member", "address", "pid", "state")
    for name, address in zip(cluster.names, cluster.endpoints, strict=True):
        pid = cluster.pid(name)
        state = "[bold green]leader[/bold green]" if name == leader else "follower"
        if not cluster.running(name):
            state = "[red]killed[/red]"
        table.add_row(name, address, str(pid or "-"), state)
    console.print(table)
