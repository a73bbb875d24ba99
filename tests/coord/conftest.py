"""Real three-member coordination clusters, one per backend, for the contract suite."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from hakeeper.coord import peer_auth
from hakeeper.coord.base import Coordinator
from hakeeper.coord.peer_auth import SessionKeys
from hakeeper.coord.pysyncobj_compat import GuardedSyncObj, SyncObjConf
from hakeeper.lab.processes import free_port
from hakeeper.model.wire_version import SUPPORTED, Format, VersionRange
from tests.conftest import require_binary


class EngineCluster(Protocol):
    """What the contract suite needs from a cluster of real engine processes."""

    backend: str
    names: list[str]

    async def client(self) -> Any: ...
    async def leader(self) -> str: ...
    def kill(self, name: str) -> None: ...
    async def stop(self, name: str) -> None: ...
    async def restart(self, name: str) -> None: ...
    async def close(self) -> None: ...


def make_cluster(backend: str, base_dir: Path) -> Any:
    if backend == "raft":
        from hakeeper.lab.raft_cluster import RaftCluster

        return RaftCluster(3, base_dir=base_dir)
    require_binary("etcd")
    from hakeeper.lab.etcd_cluster import EtcdCluster

    if backend == "etcd-secure":
        # Client certificates on client and peer ports, and a non-root RBAC user with a
        # token; its role covers "/" because the contract's keys are not under one cluster.
        return EtcdCluster(3, base_dir=base_dir, tls=True, auth=True, prefix="/")
    return EtcdCluster(3, base_dir=base_dir)


@pytest.fixture(params=["raft", "etcd", "etcd-secure"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EngineCluster]:
    cluster = make_cluster(request.param, tmp_path)
    try:
        await cluster.start()
        yield cluster
    finally:
        await cluster.close()


@pytest.fixture
async def coord(engine: EngineCluster) -> Coordinator:
    client: Coordinator = await engine.client()
    return client


# --- the Raft peer handshake without sockets (test_peer_auth, test_peer_wire_versions) --------

WIRE = SUPPORTED[Format.RAFT_PEER_WIRE]
OLD = b"o" * 32
NEW = b"n" * 32
STRANGER = b"s" * 32


def handshake(
    initiator: tuple[bytes, ...],
    acceptor: tuple[bytes, ...],
    offer: VersionRange = WIRE,
    acceptor_speaks: VersionRange = WIRE,
) -> tuple[SessionKeys, SessionKeys]:
    """Run the three messages; each side proves with its first secret, accepts all of them."""
    n_i = peer_auth.new_nonce()
    hello = peer_auth.parse_hello(peer_auth.hello(n_i, offer))
    n_a = hello.nonce
    agreed = peer_auth.choose(acceptor_speaks, hello)
    n_acc = peer_auth.new_nonce()
    reply = peer_auth.reply(acceptor[0], n_a, n_acc, agreed)
    got_n_acc, acceptor_proved, seen = peer_auth.check_reply(reply, initiator, n_i, offer)
    assert seen == agreed
    finish = peer_auth.finish(initiator[0], n_i, got_n_acc, seen)
    initiator_proved = peer_auth.check_finish(finish, acceptor, n_i, n_acc, agreed)
    mine = peer_auth.session_keys(acceptor_proved, initiator[0], n_i, got_n_acc, seen)
    theirs = peer_auth.session_keys(acceptor[0], initiator_proved, n_i, n_acc, agreed)
    return mine, theirs


# In-process PySyncObj members for the pre-vote tests. Election timeouts long enough that a
# loaded machine's late ticks do not start elections of their own: the tests count terms.
CONF = {"raftMinTimeout": 1.0, "raftMaxTimeout": 2.0, "appendEntriesPeriod": 0.1,
        "autoTickPeriod": 0.02, "connectionRetryTime": 0.2}  # fmt: skip


def wait_until(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout:g}s waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def prevote_group() -> Iterator[list[Any]]:
    """Three `GuardedSyncObj` members in this process on loopback (PySyncObj's plain
    transport), destroyed after the test."""
    addresses = [f"127.0.0.1:{free_port('127.0.0.1')}" for _ in range(3)]
    made = [
        GuardedSyncObj(a, [b for b in addresses if b != a], SyncObjConf(**CONF)) for a in addresses
    ]
    try:
        yield made
    finally:
        for member in made:
            member.destroy()


def settled(members: list[Any]) -> tuple[Any, Any, int]:
    """Wait for one leader every member follows; return (leader, a follower, term)."""

    def agreed() -> bool:
        leaders = {m._getLeader() for m in members}
        terms = {m._getTerm() for m in members}
        return len(leaders) == 1 and None not in leaders and len(terms) == 1

    wait_until("one leader every member follows", agreed)
    leader = next(m for m in members if m._isLeader())
    return leader, next(m for m in members if m is not leader), leader._getTerm()
