"""The roll's "session store in sync" gate, on fake store positions (no store processes)."""

from __future__ import annotations

import asyncio

import pytest

from hakeeper.cli.upgrade_sync import SessionReplicas
from hakeeper.config.loader import spec_from_text
from hakeeper.runtime import rolling_upgrade
from hakeeper.runtime.rolling_upgrade import GateFailed, Step, await_replicas_in_sync
from hakeeper.sessions.position import Position, Role

PEERS = {"n1": "10.0.0.1:11312", "n2": "10.0.0.2:11312", "n3": "10.0.0.3:11312"}


class FakeStore:
    """The positions each store node answers with (None: it does not answer)."""

    def __init__(self) -> None:
        self.at: dict[str, Position | None] = {
            PEERS["n1"]: Position(3, 500, 3, Role.PRIMARY),
            PEERS["n2"]: Position(3, 500, 3, Role.REPLICA),
            PEERS["n3"]: None,  # restarted: its store has not started yet
        }

    async def read(self, address: str) -> Position | None:
        return self.at[address]


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rolling_upgrade, "POLL", 0.01)


@pytest.fixture
def fake() -> FakeStore:
    return FakeStore()


@pytest.fixture
def replicas(fake: FakeStore) -> SessionReplicas:
    return SessionReplicas({"sessions": (PEERS, fake.read)})


async def test_a_restarted_replica_holds_the_roll_until_it_reaches_the_primarys_position(
    fake: FakeStore, replicas: SessionReplicas
) -> None:
    steps: list[Step] = []
    waiting = asyncio.create_task(await_replicas_in_sync("n3", steps.append, 5.0, replicas))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    fake.at[PEERS["n3"]] = Position(3, 200, 3, Role.REPLICA)  # started, copying
    fake.at[PEERS["n1"]] = Position(3, 900, 3, Role.PRIMARY)  # writes go on meanwhile
    await asyncio.sleep(0.05)
    assert not waiting.done()
    fake.at[PEERS["n3"]] = Position(3, 500, 3, Role.REPLICA)  # what the primary had at first
    await asyncio.wait_for(waiting, 5.0)
    assert [(s.step, s.done) for s in steps] == [("sync", False), ("sync", True)]
    assert "does not answer on its peer port yet" in steps[0].detail


async def test_a_replica_that_never_catches_up_stops_the_roll_naming_node_store_and_retry(
    fake: FakeStore, replicas: SessionReplicas
) -> None:
    fake.at[PEERS["n3"]] = Position(3, 10, 3, Role.REPLICA)
    with pytest.raises(GateFailed) as stopped:
        await await_replicas_in_sync("n3", lambda step: None, 0.1, replicas)
    message = str(stopped.value)
    assert "n3: its session-store replica has not caught up within 0.1s" in message
    assert "sessions: the replica on n3 is at 3/10, the primary on n1 was at 3/500" in message
    assert "run `hakeeper upgrade --rolling` again" in message


async def test_a_store_without_a_primary_is_not_in_sync(
    fake: FakeStore, replicas: SessionReplicas
) -> None:
    fake.at[PEERS["n1"]] = None
    assert await replicas("n2") == ("sessions: no primary answers (the store's clone has none "
                                    "promoted yet)",)  # fmt: skip


async def test_the_primary_and_a_node_without_a_replica_pass_at_once(
    replicas: SessionReplicas,
) -> None:
    assert await replicas("n1") == ()  # the primary is the store's own position
    assert await replicas("n2") == ()  # caught up already
    assert await replicas("n4") == ()  # runs no replica of the store
    steps: list[Step] = []
    await await_replicas_in_sync("n4", steps.append, 0.1, replicas)
    assert [(s.step, s.done) for s in steps] == [("sync", True)]


def test_the_gate_is_built_from_the_cluster_files_session_stores() -> None:
    spec = spec_from_text(
        """
[cluster]
name = "c1"
fencing = false
[nodes.n1]
address = "10.0.0.1"
[nodes.n2]
address = "10.0.0.2"
[resources.store]
agent = "sessions"
params = { port = 11311, nodes = { n1 = "10.0.0.1", n2 = "10.0.0.2" } }
[clones.sessions]
resource = "store"
promotable = true
""",
        "test",
    )
    assert SessionReplicas.of(spec).peers() == {
        "store": {"n1": "10.0.0.1:11312", "n2": "10.0.0.2:11312"}
    }
