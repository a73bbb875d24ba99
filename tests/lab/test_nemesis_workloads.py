"""The nemesis clients' outcomes: ok only for a whole answer, fail only when nothing can have
been applied, unknown when a request was sent and no whole answer came."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from hakeeper.lab.nemesis_workloads import (
    _exchange,
    _get_done,
    _line_done,
    _parse_get,
    served_by_from,
)

SET = b"set k 0 0 1\r\nv\r\n"


@pytest.fixture
def server() -> Iterator[Callable[[bytes | None], int]]:
    """A loopback server answering each connection with ``reply`` (None: never answering)."""
    sockets: list[socket.socket] = []
    stop = threading.Event()

    def start(reply: bytes | None) -> int:
        listener = socket.create_server(("127.0.0.1", 0))
        sockets.append(listener)

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(1024)
                if reply is not None:
                    conn.sendall(reply)
                stop.wait(5)

        threading.Thread(target=serve, daemon=True).start()
        return int(listener.getsockname()[1])

    yield start
    stop.set()
    for s in sockets:
        s.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_refused_connection_is_a_failure_nothing_was_sent() -> None:
    outcome, reply, error = _exchange("127.0.0.1", free_port(), SET, _line_done)

    assert (outcome, reply) == ("fail", None)
    assert "Refused" in error


def test_a_whole_answer_is_ok(server: Callable[[bytes | None], int]) -> None:
    outcome, reply, _ = _exchange("127.0.0.1", server(b"STORED\r\n"), SET, _line_done)

    assert (outcome, reply) == ("ok", "STORED\r\n")


def test_no_answer_after_sending_is_unknown(server: Callable[[bytes | None], int]) -> None:
    outcome, reply, error = _exchange("127.0.0.1", server(None), SET, _line_done)

    assert (outcome, reply, error) == ("unknown", None, "timeout")


def test_half_an_answer_is_unknown(server: Callable[[bytes | None], int]) -> None:
    outcome, _, _ = _exchange("127.0.0.1", server(b"VALUE k 0 5\r\nab"), b"get k\r\n", _get_done)

    assert outcome == "unknown"


def test_a_get_reply_gives_its_value_or_none_or_says_it_is_an_error() -> None:
    assert _parse_get("VALUE k 0 3\r\nabc\r\nEND\r\n") == ("abc",)
    assert _parse_get("END\r\n") == (None,)
    assert _parse_get("SERVER_ERROR no primary known to this replica\r\n") is None
    assert _parse_get("VALUE k 0 9\r\nabc\r\nEND\r\n") is None


NAMES = {"10.0.0.11": "n1", "10.0.0.12": "n2"}


def stats(peer: str, role: str, primary: str) -> str:
    return (
        f"STAT pid 7\r\nSTAT hakeeper_role {role}\r\nSTAT hakeeper_epoch 4\r\n"
        f"STAT hakeeper_peer {peer}\r\nSTAT hakeeper_primary {primary}\r\nEND\r\n"
    )


def test_a_primary_that_answered_is_named() -> None:
    reply = stats("10.0.0.11:11312", "primary", "10.0.0.11:11312")
    assert served_by_from(reply, NAMES) == "n1 primary e4"


def test_a_replica_that_answered_is_named_with_where_it_forwards() -> None:
    reply = stats("10.0.0.12:11312", "replica", "10.0.0.11:11312")
    assert served_by_from(reply, NAMES) == "n2 replica e4 via n1"


def test_a_store_that_does_not_say_who_it_is_is_not_named() -> None:
    assert served_by_from("STAT pid 7\r\nEND\r\n", NAMES) == ""
