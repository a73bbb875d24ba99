"""Controller election and writes fenced by the controller's term."""

from __future__ import annotations

import asyncio
import time

from hakeeper.model.records import Assignment, Placement
from hakeeper.runtime.election import Controller, ControllerElection
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.store import ClusterStore
from tests.fakes import LocalCoordinator

KEYS = KeySpace("c1")


async def test_the_first_candidate_wins_and_the_term_is_its_create_revision() -> None:
    coord = LocalCoordinator()
    lease1, lease2 = await coord.grant(3), await coord.grant(3)
    first = await ControllerElection(coord, KEYS, "n1").campaign(lease1)
    second = await ControllerElection(coord, KEYS, "n2").campaign(lease2)
    kv = await coord.get(KEYS.controller)
    assert kv is not None
    assert first == second == Controller("n1", kv.create_revision)


async def test_a_new_controller_gets_a_higher_term_when_the_old_one_is_gone() -> None:
    coord = LocalCoordinator()
    old = await ControllerElection(coord, KEYS, "n1").campaign(await coord.grant(3))
    coord.expire_leases(time.monotonic() + 10)
    lease2 = await coord.grant(3)
    new = await ControllerElection(coord, KEYS, "n2").campaign(lease2)
    assert new.node == "n2"
    assert new.term > old.term


async def test_a_deposed_controller_cannot_write() -> None:
    coord = LocalCoordinator()
    election1 = ControllerElection(coord, KEYS, "n1")
    old = await election1.campaign(await coord.grant(3))
    coord.expire_leases(time.monotonic() + 10)
    await ControllerElection(coord, KEYS, "n2").campaign(await coord.grant(3))

    store = ClusterStore(coord, KEYS)
    written = await store.write_assignments(old.term, {"db": Assignment("db", (Placement("n1"),))})

    assert written is None
    assert await coord.get(KEYS.assignment("db")) is None


async def test_vacated_returns_once_the_controller_key_is_gone() -> None:
    coord = LocalCoordinator()
    election = ControllerElection(coord, KEYS, "n2")
    await ControllerElection(coord, KEYS, "n1").campaign(await coord.grant(3))
    waiting = asyncio.create_task(election.vacated(timeout=30.0))
    await asyncio.sleep(0)
    await coord.delete(KEYS.controller)
    await asyncio.wait_for(waiting, 5)
    assert await election.current() is None


async def test_vacated_gives_up_after_its_timeout_while_the_controller_stays() -> None:
    coord = LocalCoordinator()
    await ControllerElection(coord, KEYS, "n1").campaign(await coord.grant(3))
    await asyncio.wait_for(ControllerElection(coord, KEYS, "n2").vacated(timeout=0.05), 5)
    assert await ControllerElection(coord, KEYS, "n2").current() is not None


async def test_a_resigned_term_ends_and_the_next_campaign_starts_a_new_one() -> None:
    coord = LocalCoordinator()
    election = ControllerElection(coord, KEYS, "n1")
    lease = await coord.grant(3)
    old = await election.campaign(lease)

    assert await election.resign(old.term)
    new = await election.campaign(lease)

    assert new.node == "n1"
    assert new.term > old.term
    assert not await election.resign(old.term)  # the old term no longer holds the key
    assert await election.current() == new


async def test_a_controller_key_without_a_lease_is_deleted_and_the_campaign_wins() -> None:
    # Written by hand (etcdctl put): no lease would ever end it.
    coord = LocalCoordinator()
    await coord.put(KEYS.controller, b"n9")
    won = await ControllerElection(coord, KEYS, "n1").campaign(await coord.grant(3))
    assert won.node == "n1"


async def test_a_controller_key_that_names_no_node_is_deleted_and_the_campaign_wins() -> None:
    coord = LocalCoordinator()
    await coord.put(KEYS.controller, b"\xff\xfe", await coord.grant(30))
    won = await ControllerElection(coord, KEYS, "n1").campaign(await coord.grant(3))
    assert won.node == "n1"


async def test_a_controller_elected_by_the_cluster_is_kept() -> None:
    coord = LocalCoordinator()
    first = await ControllerElection(coord, KEYS, "n2").campaign(await coord.grant(30))
    again = await ControllerElection(coord, KEYS, "n1").campaign(await coord.grant(3))
    assert again == first


async def test_an_unreadable_controller_key_is_shown_not_raised() -> None:
    coord = LocalCoordinator()
    await coord.put(KEYS.controller, b"\xff", await coord.grant(30))
    current = await ControllerElection(coord, KEYS, "n1").current()
    assert current is not None
    assert current.node == "\ufffd"
