"""Commands are checked before they are proposed, and a malformed entry that reaches the log
anyway is applied as a logged no-op on every member instead of wedging the group."""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path
from typing import Any

import pytest

from hakeeper.config.secret_file import write_secret_file
from hakeeper.coord.base import Cmp, Put
from hakeeper.coord.pysyncobj_compat import Skipped
from hakeeper.coord.raft import RaftCoordinator
from hakeeper.coord.raft_state import (
    MAX_TXN_OPS,
    MAX_VALUE_BYTES,
    KVStateMachine,
    MalformedCommand,
    check_txn,
)
from hakeeper.lab.raft_cluster import RaftCluster

REGULAR = 0  # PySyncObj's _COMMAND_TYPE.REGULAR


@pytest.mark.parametrize(
    ("compare", "success", "message"),
    [
        ([], [("put", "/k", "text, not bytes", 0)], "put value must be bytes"),
        ([], [("put", "/k", b"x" * (MAX_VALUE_BYTES + 1), 0)], "put value must be bytes"),
        ([], [("put", 42, b"v", 0)], "is not a string"),
        ([], [("put", "/" + "k" * 5000, b"v", 0)], "exceeds 4096"),
        ([], [("put", "/k", b"v", -1)], "lease id"),
        ([], [("drop", "/k", False, None)], "unknown"),
        ([("/k", "owner", "==", 1)], [], "unknown"),
        ([("/k", "version", "==", b"1")], [], "needs an integer"),
        ([], [("get", "/k", False, None)] * (MAX_TXN_OPS + 1), "per txn"),
        ([], "not a list", "must be lists"),
    ],
)
def test_a_malformed_txn_is_refused_with_the_reason(
    compare: Any, success: Any, message: str
) -> None:
    with pytest.raises(MalformedCommand, match=message):
        check_txn("id", compare, success, [])


def test_a_well_formed_txn_passes_the_check() -> None:
    compare = [("/k", "value", "==", b"")]
    check_txn("id", compare, [("put", "/k", b"v", 0)], [("get", "/", True, None)])


def test_a_malformed_txn_applied_changes_nothing() -> None:
    state = KVStateMachine()
    with pytest.raises(MalformedCommand):
        state.cmd_txn("id", [], [("put", "/k", "text", 0)], [], _doApply=True)
    assert state.kvs == {}
    assert state.revision == 0


async def test_the_coordinator_refuses_a_malformed_command_before_proposing_it(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "secret"
    write_secret_file(secret)
    coord = RaftCoordinator(["127.0.0.1:7001"], secret_file=secret)
    # Not started: a check that ran after proposing would fail with "not running" instead.
    with pytest.raises(MalformedCommand, match="put value must be bytes"):
        await coord.txn([], [Put("/k", "text")])  # type: ignore[arg-type]
    with pytest.raises(MalformedCommand, match="compare target"):
        await coord.txn([Cmp("/k", "owner", "==", 1)], [])  # type: ignore[arg-type]


async def _inject(client: RaftCoordinator, payload: bytes) -> Any:
    """Append ``payload`` to the Raft log as a regular command, bypassing every check."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[tuple[Any, int]] = loop.create_future()

    def resolve(result: Any, error: int) -> None:
        loop.call_soon_threadsafe(lambda: done.done() or done.set_result((result, error)))

    client._sync._applyCommand(payload, resolve, REGULAR)
    result, error = await asyncio.wait_for(done, 30)
    assert error == 0, f"the injected entry was not committed (error {error})"
    return result


@pytest.mark.slow
async def test_malformed_entries_in_the_log_are_skipped_on_every_member(tmp_path: Path) -> None:
    async with RaftCluster(3, base_dir=tmp_path) as cluster:
        client = await cluster.client()
        await client.put("/before", b"1")
        txn_id = next(
            method_id
            for key, method_id in client._sync._methodToID.items()
            if isinstance(key, tuple) and key[1].startswith("cmd_txn")  # PySyncObj's "cmd_txn_v0"
        )
        poison = [
            b"\x80\x04not a pickle at all",
            pickle.dumps((987_654, ())),  # no such replicated method
            pickle.dumps((txn_id, ("id", [], [("put", "/k", "text", 0)], []))),  # bad types
            pickle.dumps((txn_id, ("only", "two"))),  # wrong arity
        ]
        for payload in poison:
            result = await _inject(client, payload)
            assert isinstance(result, Skipped), result
        # Nothing wedged: the next write commits and every member lives.
        await asyncio.wait_for(client.put("/after", b"2"), 30)
        assert (await client.get("/after")) is not None
        assert (await client.get("/k")) is None
        # A write commits on two of three: the third may apply the poison a moment later.
        for name in cluster.names:
            assert cluster.running(name)
            log_file = tmp_path / f"{name}.log"
            for _ in range(150):
                if log_file.read_text().count("event=raft_entry_skipped") >= len(poison):
                    break
                await asyncio.sleep(0.2)
            assert log_file.read_text().count("event=raft_entry_skipped") == len(poison), name
