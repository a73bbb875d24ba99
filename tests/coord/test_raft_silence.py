"""How long a member has been silent, as the embedded Raft reports it across an election
(`RaftCoordinator.lease_renewed_ago`): counted from the new leader's accession for every
member, but from its last renewal for the leader that fell."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from hakeeper.config.secret_file import write_secret_file
from hakeeper.coord.raft import RaftCoordinator

A, B, C = "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"
LEASE = 7
SILENT = 5.0  # seconds since the lease's last renewal, in every test


@dataclass(frozen=True)
class Peer:
    address: str


class Engine:
    """The part of PySyncObj these reports read: who leads, as this member heard it."""

    def __init__(self, leader: str | None) -> None:
        self.leader = leader

    def _getLeader(self) -> Peer | None:
        return None if self.leader is None else Peer(self.leader)


@pytest.fixture
def coord(tmp_path: Path) -> RaftCoordinator:
    secret = tmp_path / "secret"
    write_secret_file(secret)
    coord = RaftCoordinator([A, B, C], self_address=C, data_dir=tmp_path, secret_file=secret)
    coord._state.renewed_at[LEASE] = time.monotonic() - SILENT
    return coord


async def lead(coord: RaftCoordinator, engine: Engine, *leaders: str | None) -> None:
    """This member sees each leader in turn (a report notes the leader it sees)."""
    coord._sync = engine
    for leader in leaders:
        engine.leader = leader
        await coord.lease_renewed_ago(LEASE)


async def silence(coord: RaftCoordinator, member: str) -> float:
    """The silence reported for ``member``'s lease (some must be reported)."""
    age = await coord.lease_renewed_ago(LEASE, member)
    assert age is not None
    return age


async def test_silence_before_the_new_leader_took_office_is_not_counted(
    coord: RaftCoordinator,
) -> None:
    await lead(coord, Engine(A), A, None, B)

    assert await silence(coord, C) < 1.0


async def test_the_fallen_leaders_silence_is_counted_from_its_last_renewal(
    coord: RaftCoordinator,
) -> None:
    await lead(coord, Engine(A), A, None, B)

    assert await silence(coord, A) >= SILENT


async def test_a_leader_that_handed_over_for_its_removal_has_not_fallen(
    coord: RaftCoordinator,
) -> None:
    await lead(coord, Engine(A), A)
    coord._record.pending = ("remove", A)
    await lead(coord, Engine(A), B)

    assert await silence(coord, A) < 1.0


async def test_a_leader_that_leads_again_has_not_fallen(coord: RaftCoordinator) -> None:
    await lead(coord, Engine(A), A, None, A)

    assert await silence(coord, A) < 1.0


async def test_without_a_leader_no_silence_is_reported(coord: RaftCoordinator) -> None:
    await lead(coord, Engine(A), A, None)

    assert await coord.lease_renewed_ago(LEASE, A) is None
