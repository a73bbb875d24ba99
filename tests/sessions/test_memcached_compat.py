"""The store answers byte for byte as Debian's memcached 1.6 does, errors included.

Both servers get the same byte sequences in the same order (state carries over from case to
case); replies are compared with CAS uniques masked, as each server numbers them its own way.
"""

from __future__ import annotations

import re
import socket

import pytest

pytestmark = pytest.mark.slow

SENTINEL = b"version\r\n"
K251 = b"k" * 251
K250 = b"k" * 250

# (bytes to send, whether the connection stays open so a `version` sentinel can end the reply)
CASES: list[tuple[bytes, bool]] = [
    (b"get\r\n", True),
    (b"bogus\r\n", True),
    (b"GET a\r\n", True),
    (b"   \r\n", True),
    (b"\r\n", True),
    (b"set a 0 0 1\r\nx\r\n", True),
    (b"get a\r\n", True),
    (b"get a\nget a\n", True),
    (b"get a  a\r\n", True),
    (b"set a 0 0 1\r\nxy\r\n", True),
    (b"set a 0 0 z\r\nx\r\n", True),
    (b"set a 0\r\n", True),
    (b"set a\t0 0 1\r\nx\r\n", True),
    (b"set " + K251 + b" 0 0 1\r\nx\r\n", True),
    (b"set " + K250 + b" 0 0 1\r\nx\r\n", True),
    (b"get " + K251 + b"\r\n", True),
    (b"get " + K250 + b"\r\n", True),
    (b"set c 4294967296 0 1\r\nc\r\n", True),
    (b"get c\r\n", True),
    (b"set c 4294967295 0 1\r\nc\r\n", True),
    (b"get c\r\n", True),
    (b"set c 99999999999999999999 0 1\r\nc\r\n", True),
    (b"set c -1 0 1\r\nc\r\n", True),
    (b"set c 0 0 -1\r\n", True),
    (b"set a 0 0 2147483648\r\n", True),
    (b"set a 0 0 1abc\r\n", True),
    (b"set a 0 1abc 1\r\nx\r\n", True),
    (b"set a 0x10 0 1\r\nx\r\n", True),
    (b"set a 1.5 0 1\r\nx\r\n", True),
    (b"set a +1 +0 +1\r\nx\r\n", True),
    (b"set a 0 0  1\r\nx\r\n", True),
    (b"set a 0 0 1 junk\r\nx\r\n", True),
    (b"set a 0 0 1 noreply\r\nx\r\n", True),
    (b"set a 0 0 1 noreply extra\r\nx\r\n", True),
    (b"set e 0 0 0\r\n\r\n", True),
    (b"get e\r\n", True),
    (b"set b 0 -1 1\r\nb\r\n", True),
    (b"get b\r\n", True),
    (b"set e 0 1000000000 1\r\ne\r\n", True),
    (b"get e\r\n", True),
    (b"set e 0 2592000 1\r\ne\r\n", True),
    (b"get e\r\n", True),
    (b"set e 0 2592001 1\r\ne\r\n", True),
    (b"get e\r\n", True),
    (b"set big 0 0 2000000\r\n" + b"x" * 2_000_000 + b"\r\n", True),
    (b"set big 0 0 1048000\r\n" + b"x" * 1_048_000 + b"\r\n", True),
    (b"set big 0 0 1048577\r\n" + b"x" * 1_048_577 + b"\r\n", True),
    (b"get big\r\n", True),
    (b"add a 0 0 1\r\nq\r\n", True),
    (b"add new 0 0 1\r\nq\r\n", True),
    (b"replace zz 0 0 1\r\nq\r\n", True),
    (b"replace new 7 0 1\r\nr\r\n", True),
    (b"append zz 0 0 1\r\nq\r\n", True),
    (b"append new 0 0 2\r\nst\r\n", True),
    (b"prepend new 5 0 2\r\nop\r\n", True),
    (b"gets new\r\n", True),
    (b"cas new 0 0 1\r\ny\r\n", True),
    (b"cas new 0 0 1 999\r\ny\r\n", True),
    (b"cas zz 0 0 1 1\r\ny\r\n", True),
    (b"cas new 0 0 1 x\r\ny\r\n", True),
    (b"cas new 0 0 1 -1\r\ny\r\n", True),
    (b"incr a 1\r\n", True),
    (b"set n 0 0 2\r\n10\r\n", True),
    (b"incr n 5\r\n", True),
    (b"decr n 100\r\n", True),
    (b"incr n x\r\n", True),
    (b"incr n -1\r\n", True),
    (b"incr n +1\r\n", True),
    (b"incr nokey 1\r\n", True),
    (b"decr nokey 1\r\n", True),
    (b"incr n 18446744073709551616\r\n", True),
    (b"set n 0 0 20\r\n18446744073709551615\r\n", True),
    (b"incr n 1\r\n", True),
    (b"get n\r\n", True),
    (b"set n 0 0 3\r\n100\r\n", True),
    (b"decr n 1\r\n", True),
    (b"get n\r\n", True),
    (b"set n 0 0 3\r\n 12\r\n", True),
    (b"incr n 1\r\n", True),
    (b"set n 0 0 3\r\n-12\r\n", True),
    (b"incr n 1\r\n", True),
    (b"set n 0 0 0\r\n\r\n", True),
    (b"incr n 1\r\n", True),
    (b"incr n 1 junk\r\n", True),
    (b"incr n 1 2 3\r\n", True),
    (b"incr a\r\n", True),
    (b"incr a 1 noreply\r\n", True),
    (b"touch a 10\r\n", True),
    (b"touch zz 10\r\n", True),
    (b"touch a x\r\n", True),
    (b"touch a\r\n", True),
    (b"touch a 1 2 3\r\n", True),
    (b"touch a 10 noreply\r\n", True),
    (b"gat 0 a\r\n", True),
    (b"gats 0 a new\r\n", True),
    (b"gat a\r\n", True),
    (b"gat x a\r\n", True),
    (b"gat 0\r\n", True),
    (b"gets\r\n", True),
    (b"gets a b new\r\n", True),
    (b"delete a 0\r\n", True),
    (b"delete a 5\r\n", True),
    (b"delete a\r\n", True),
    (b"delete a noreply\r\n", True),
    (b"delete a 0 noreply\r\n", True),
    (b"delete a b c\r\n", True),
    (b"delete\r\n", True),
    (b"set k\x01y 0 0 1\r\nx\r\n", True),
    (b"get k\x01y\r\n", True),
    (b"verbosity 1\r\n", True),
    (b"verbosity\r\n", True),
    (b"verbosity 1 noreply\r\n", True),
    (b"verbosity 1 2 3\r\n", True),
    (b"version extra\r\n", True),
    (b"flush_all x\r\n", True),
    (b"flush_all 0 1\r\n", True),
    (b"flush_all noreply\r\n", True),
    (b"flush_all -1\r\n", True),
    (b"flush_all\r\n", True),
    (b"get new\r\n", True),
    (b"stats bogus\r\n", True),
    (b"get " + b"k " * 2000 + b"\r\n", True),
    (b"x" * 3000 + b"\r\n", True),
    (b"x" * 3000, False),
    (b"quit\r\n", False),
    (b"quit extra\r\n", False),
]

CAS = re.compile(rb"^(VALUE \S+ \d+ \d+) \d+\r$", re.MULTILINE)


def exchange(address: str, payload: bytes, sentinel: bool) -> bytes:
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(payload + (SENTINEL if sentinel else b""))
        reply = b""
        while not (sentinel and reply.endswith(b"VERSION 1.6.18\r\n")):
            try:
                chunk = sock.recv(1 << 20)
            except ConnectionResetError:
                return reply + b"<reset>"
            if not chunk:
                return reply + b"<closed>"
            reply += chunk
    return CAS.sub(rb"\1 <cas>\r", reply)


def test_every_case_gets_memcacheds_reply(store_address: str, memcached_address: str) -> None:
    mismatches = []
    for payload, sentinel in CASES:
        expected = exchange(memcached_address, payload, sentinel)
        got = exchange(store_address, payload, sentinel)
        if got != expected:
            mismatches.append((payload[:80], expected[:200], got[:200]))
    assert mismatches == []


def test_malformed_input_leaves_other_connections_working(store_address: str) -> None:
    host, _, port = store_address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=10) as good:
        good.sendall(b"set keep 0 0 2\r\nok\r\n")
        assert good.recv(100) == b"STORED\r\n"
        for junk in (b"\x00\xff" * 5000, b"set a 0 0 5\r\nxx\r\n\r\n", b"y" * 5000, b"\xfe\r\n"):
            with socket.create_connection((host, int(port)), timeout=10) as bad:
                bad.sendall(junk)
        good.sendall(b"get keep\r\n")
        assert good.recv(100) == b"VALUE keep 0 2\r\nok\r\nEND\r\n"
