"""Growing and shrinking the embedded Raft group, on real member processes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from hakeeper.coord.base import ChangeInProgress, MembershipChanges
from hakeeper.coord.raft import RaftCoordinator
from hakeeper.errors import CoordError, EngineMismatch
from hakeeper.lab.raft_cluster import RaftCluster

pytestmark = pytest.mark.slow

CHANGE_TIMEOUT = 90.0


class Writer:
    """A bounded writer: one numbered key per write, remembering what was acknowledged and
    the longest gap between two acknowledged writes (the write outage)."""

    def __init__(self, client: RaftCoordinator) -> None:
        self.client = client
        self.acked: list[int] = []
        self.longest_gap = 0.0
        self._last_ack = time.monotonic()
        self._stop = asyncio.Event()

    async def run(self, limit: int = 100_000) -> None:
        for n in range(limit):
            if self._stop.is_set():
                return
            try:
                await self.client.put(f"/w/{n:06d}", b"x")
            except CoordError:
                continue  # outcome unknown: not counted as acknowledged
            now = time.monotonic()
            self.longest_gap = max(self.longest_gap, now - self._last_ack)
            self._last_ack = now
            self.acked.append(n)
            await asyncio.sleep(0.02)

    def take_gap(self) -> float:
        gap, self.longest_gap = self.longest_gap, 0.0
        return gap

    def stop(self) -> None:
        self._stop.set()


async def _commits_within(client: RaftCoordinator, key: str, bound: float = 30.0) -> None:
    await asyncio.wait_for(client.put(key, b"1"), bound)


async def test_the_raft_backend_offers_membership_changes(tmp_path: Path) -> None:
    async with RaftCluster(3, base_dir=tmp_path) as cluster:
        client = await cluster.client()
        assert isinstance(client, MembershipChanges)
        members = await client.members()
        assert members.voters == tuple(sorted(cluster.endpoints))
        assert members.pending is None


async def test_a_group_grows_to_five_and_shrinks_to_three_without_losing_a_write(
    tmp_path: Path,
) -> None:
    async with RaftCluster(3, base_dir=tmp_path) as cluster:
        client = await cluster.client()
        writer = Writer(client)
        task = asyncio.create_task(writer.run())
        outages: dict[str, float] = {}
        try:
            for step in ("add m4", "add m5"):
                name = cluster.start_learner()
                writer.take_gap()
                members = await client.add_member(cluster.address(name), CHANGE_TIMEOUT)
                assert cluster.address(name) in members.voters
                await _commits_within(client, f"/after/{step}")
                outages[step] = writer.take_gap()
            assert len((await client.members()).voters) == 5
            for name in ("m1", "m2"):
                writer.take_gap()
                members = await client.remove_member(cluster.address(name), CHANGE_TIMEOUT)
                assert cluster.address(name) not in members.voters
                assert cluster.address(name) in members.retired
                await _commits_within(client, f"/after/remove {name}")
                outages[f"remove {name}"] = writer.take_gap()
                cluster.kill(name)
            await _commits_within(client, "/after/all")
        finally:
            writer.stop()
            await asyncio.wait_for(task, 60)
        print("write outage per change (s):", {k: round(v, 3) for k, v in outages.items()})
        assert writer.acked, "no write was acknowledged"
        stored = {kv.key for kv in await client.range("/w/")}
        lost = [n for n in writer.acked if f"/w/{n:06d}" not in stored]
        assert lost == []
        assert len((await client.members()).voters) == 3


async def test_a_second_change_while_one_is_in_flight_is_refused(tmp_path: Path) -> None:
    async with RaftCluster(3, base_dir=tmp_path) as cluster:
        client = await cluster.client()
        name = cluster.start_learner()
        adding = asyncio.create_task(client.add_member(cluster.address(name), CHANGE_TIMEOUT))
        deadline = time.monotonic() + 60
        while (await client.members()).pending is None and not adding.done():
            assert time.monotonic() < deadline, "the addition never took the change slot"
            await asyncio.sleep(0.02)
        if not adding.done():
            with pytest.raises(ChangeInProgress, match="one membership change at a time"):
                await client.remove_member(cluster.address("m1"), CHANGE_TIMEOUT)
        members = await asyncio.wait_for(adding, CHANGE_TIMEOUT)
        assert cluster.address(name) in members.voters


async def test_a_removed_member_restarted_with_its_old_data_is_refused(tmp_path: Path) -> None:
    async with RaftCluster(3, base_dir=tmp_path) as cluster:
        client = await cluster.client()
        leaving = await cluster.leader()  # the hardest case: the leader hands over first
        await client.remove_member(cluster.address(leaving), CHANGE_TIMEOUT)
        cluster.kill(leaving)
        await cluster.restart(leaving)
        deadline = time.monotonic() + 90
        while cluster.running(leaving):
            assert time.monotonic() < deadline, "the removed member kept running"
            await asyncio.sleep(0.2)
        log_text = (tmp_path / f"{leaving}.log").read_text()
        assert "was removed from this group" in log_text
        await _commits_within(client, "/still/working")
        with pytest.raises(EngineMismatch, match="never votes again"):
            await client.add_member(cluster.address(leaving), CHANGE_TIMEOUT)


async def _fill(client: RaftCoordinator, count: int) -> None:
    for n in range(count):
        await client.put(f"/fill/{n:05d}", b"v" * 512)


async def test_a_new_member_catches_up_as_a_learner_then_votes(tmp_path: Path) -> None:
    async with RaftCluster(3, base_dir=tmp_path) as cluster:
        client = await cluster.client()
        await _fill(client, 300)
        name = cluster.start_learner()
        await client.add_member(cluster.address(name), CHANGE_TIMEOUT)
        log_text = (tmp_path / f"{name}.log").read_text()
        caught_up = log_text.index("event=raft_learner_caught_up")
        assert caught_up < log_text.index("event=raft_learner_promoted")
        # Four voters need three: with the leader gone, the new member's vote decides.
        cluster.kill(await cluster.leader())
        await _commits_within(client, "/after/leader-killed", bound=60.0)
        assert len(await client.range("/fill/")) == 300


async def test_killing_the_learner_mid_change_leaves_the_group_whole(tmp_path: Path) -> None:
    async with RaftCluster(3, base_dir=tmp_path) as cluster:
        client = await cluster.client()
        await _fill(client, 300)
        name = cluster.start_learner()
        adding = asyncio.create_task(client.add_member(cluster.address(name), 20.0))
        await asyncio.sleep(0.5)
        cluster.kill(name)
        try:
            members = await asyncio.wait_for(adding, CHANGE_TIMEOUT)
            completed = True
        except CoordError:
            members = await client.members()
            completed = False
        assert members.pending is None
        assert (cluster.address(name) in members.voters) == completed
        await _commits_within(client, "/after/interrupted")
        print("interrupted addition", "completed" if completed else "not applied")


async def test_a_change_abandoned_by_its_proposer_is_freed_by_the_next(tmp_path: Path) -> None:
    async with RaftCluster(3, base_dir=tmp_path) as cluster:
        client = await cluster.client()
        name = cluster.start_learner()
        # A proposer that took the slot and died long ago (its deadline is an hour past).
        verdict = await client._submit(
            client._record.cmd_member_propose, "dead-proposer", "add", "127.0.0.1:1", 1,
            time.time() - 3600.0,
        )  # fmt: skip
        assert verdict == "ok"
        members = await client.add_member(cluster.address(name), CHANGE_TIMEOUT)
        assert cluster.address(name) in members.voters
        assert "127.0.0.1:1" not in members.voters


async def test_a_learner_joining_after_compaction_votes_from_the_snapshot(tmp_path: Path) -> None:
    async with RaftCluster(3, base_dir=tmp_path) as cluster:
        # Members compact without forking: the snapshot is written on the engine's own
        # thread, and on a loaded machine a put waited out the default 5 s behind it.
        client = await cluster.client(request_timeout=30.0)
        await _fill(client, 5200)  # past the members' 5,000-entry compaction threshold
        deadline = time.monotonic() + 120
        while not all((tmp_path / n / "raft.dump").exists() for n in cluster.names):
            assert time.monotonic() < deadline, "the members never compacted their logs"
            await client.put("/tick", b"1")
            await asyncio.sleep(0.2)
        name = cluster.start_learner()
        await client.add_member(cluster.address(name), CHANGE_TIMEOUT)
        cluster.kill(await cluster.leader())
        await _commits_within(client, "/after/leader-killed", bound=60.0)
        assert len(await client.range("/fill/")) == 5200
