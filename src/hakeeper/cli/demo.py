"""`hakeeper demo`: the coordination layer at work on this machine, no root needed.

Starts three embedded-Raft members as separate processes on loopback, shows the leader they
elect, writes through a client, kills the leader with SIGKILL, shows the survivors elect a
new one without losing a write, and brings the killed member back.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hakeeper.coord.base import Coordinator
from hakeeper.errors import CoordError, HakeeperError
from hakeeper.lab.raft_cluster import RaftCluster
from hakeeper.model.timing import profile as timing_profile

console = Console()


def demo(
    profile: Annotated[str, typer.Option(help="Timing profile: fast, default, wan.")] = "default",
) -> None:
    """Run a 3-member coordination cluster on loopback and kill its leader."""
    try:
        with tempfile.TemporaryDirectory(prefix="hakeeper-demo-") as base:
            asyncio.run(_demo(Path(base), profile))
    except HakeeperError as exc:
        console.print(f"[red]demo failed:[/red] {exc}")
        raise typer.Exit(1) from exc


async def _demo(base: Path, profile: str) -> None:
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
