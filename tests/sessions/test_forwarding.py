"""A replica's forwarding to the primary, without sockets: orphans, expiry, the upstream."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from hakeeper.config.secret_file import SecretFile
from hakeeper.sessions.boundary import Slot
from hakeeper.sessions.forwarding import Forwarder

TIMEOUT = 5.0
SELF = "127.0.0.1:2"
PRIMARY = "127.0.0.2:2"


class FakeConnection:
    peer = False

    def __init__(self) -> None:
        self.released = 0

    def release(self) -> None:
        self.released += 1

    def oldest_held(self) -> float | None:
        return None

    def abort(self, reason: str) -> None:
        raise AssertionError(f"not expected: abort({reason})")

    def sweep(self, now: float, idle_timeout: float, request_timeout: float) -> None:
        pass


class Spawned:
    """Stands for the node's task group: keeps the coroutines, never runs them."""

    def __init__(self) -> None:
        self.coroutines: list[Coroutine[Any, Any, None]] = []

    def __call__(self, coro: Coroutine[Any, Any, None]) -> None:
        self.coroutines.append(coro)

    def close(self) -> None:
        for coro in self.coroutines:
            coro.close()


def no_secret() -> SecretFile:
    raise AssertionError("these tests never open the connection to the primary")


def forwarder(spawned: Spawned) -> Forwarder:
    return Forwarder(SELF, TIMEOUT, no_secret, None, spawned)


def test_a_command_waits_as_an_orphan_while_no_primary_is_known() -> None:
    spawned = Spawned()
    conn = FakeConnection()
    slot = Slot(None, 0.0)
    forwarder(spawned).forward(None, b"get k\r\n", True, False, slot, conn)
    assert spawned.coroutines == []
    assert slot.data is None
    assert conn.released == 0


def test_a_command_for_this_node_itself_waits_as_an_orphan() -> None:
    spawned = Spawned()
    forwarding = forwarder(spawned)
    conn = FakeConnection()
    forwarding.forward(SELF, b"get k\r\n", True, False, Slot(None, 0.0), conn)
    assert [orphan[0] for orphan in forwarding.take_orphans()] == [b"get k\r\n"]
    assert spawned.coroutines == []


def test_taken_orphans_are_gone() -> None:
    forwarding = forwarder(Spawned())
    forwarding.forward(None, b"get k\r\n", True, False, Slot(None, 0.0), FakeConnection())
    forwarding.take_orphans()
    assert forwarding.take_orphans() == []


def test_an_orphan_past_the_forward_timeout_is_answered_with_an_error() -> None:
    forwarding = forwarder(Spawned())
    conn = FakeConnection()
    slot = Slot(None, 10.0)
    forwarding.forward(None, b"get k\r\n", True, False, slot, conn)
    forwarding.expire(10.0 + TIMEOUT / 2)
    assert slot.data is None
    forwarding.expire(10.0 + TIMEOUT)
    assert slot.data == b"SERVER_ERROR no primary known to this replica\r\n"
    assert conn.released == 1


def test_a_noreply_orphan_is_answered_with_nothing() -> None:
    forwarding = forwarder(Spawned())
    slot = Slot(None, 0.0)
    forwarding.forward(None, b"delete k\r\n", False, True, slot, FakeConnection())
    forwarding.fail_orphans(float("inf"))
    assert slot.data == b""


def test_commands_to_one_primary_share_one_connection() -> None:
    spawned = Spawned()
    forwarding = forwarder(spawned)
    for _ in range(3):
        forwarding.forward(PRIMARY, b"get k\r\n", True, False, Slot(None, 0.0), FakeConnection())
    assert len(spawned.coroutines) == 1
    spawned.close()


def test_a_new_primary_gets_a_new_connection_and_the_old_one_fails_its_commands() -> None:
    spawned = Spawned()
    forwarding = forwarder(spawned)
    slot = Slot(None, 0.0)
    forwarding.forward(PRIMARY, b"get k\r\n", True, False, slot, FakeConnection())
    forwarding.forward("127.0.0.3:2", b"get k\r\n", True, False, Slot(None, 0.0), FakeConnection())
    assert len(spawned.coroutines) == 2
    assert slot.data is not None
    assert slot.data.startswith(b"SERVER_ERROR primary 127.0.0.2:2")
    spawned.close()


def test_drop_answers_what_the_primary_still_owed() -> None:
    spawned = Spawned()
    forwarding = forwarder(spawned)
    slot = Slot(None, 0.0)
    conn = FakeConnection()
    forwarding.forward(PRIMARY, b"get k\r\n", True, False, slot, conn)
    forwarding.drop("promoted")
    assert slot.data == b"SERVER_ERROR primary 127.0.0.2:2 unreachable (promoted)\r\n"
    assert conn.released == 1
    spawned.close()
