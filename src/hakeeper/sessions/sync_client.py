"""A blocking memcached-protocol client for WSGI apps: get, set, touch, delete.

One socket per thread (WSGI servers run a request per thread); every call has a timeout;
failures raise `SessionStoreError` and drop the socket so the next call reconnects. The
bytes of requests and replies are `client_codec`'s (shared with the asyncio `client`); this
module only moves them over a blocking socket.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Generator
from typing import TypeVar

from hakeeper.errors import SessionStoreError
from hakeeper.model.address import split_address
from hakeeper.sessions import client_codec as codec
from hakeeper.sessions.client_codec import LINE, MalformedReply

T = TypeVar("T")


class SyncClient:
    def __init__(
        self, address: str, *, timeout: float = 5.0, credentials: bytes | None = None
    ) -> None:
        self.address = address
        self.host, self.port = split_address(address)
        self.timeout = timeout
        # b"user password" for a store with an authfile (memcached's ASCII auth).
        self.credentials = credentials
        self._local = threading.local()

    def get(self, key: bytes) -> bytes | None:
        values = self._call(codec.retrieval_request(b"get", key), codec.values_reply(self.address))
        value = values.get(key)
        return value.data if value is not None else None

    def set(self, key: bytes, data: bytes, exptime: int) -> bytes:
        return self._line(codec.storage_request(b"set", key, data, exptime=exptime))

    def touch(self, key: bytes, exptime: int) -> bytes:
        return self._line(codec.command_request(b"touch %s %d" % (key, exptime)))

    def delete(self, key: bytes) -> bytes:
        return self._line(codec.command_request(b"delete %s" % key))

    def _line(self, payload: bytes) -> bytes:
        return self._call(payload, codec.line_reply(self.address))

    def _call(self, payload: bytes, parser: Generator[int, bytes, T]) -> T:
        """Send ``payload`` on this thread's connection (opened and authenticated first if
        needed); the reply as ``parser`` reads it."""
        conn: _Connection | None = getattr(self._local, "conn", None)
        try:
            if conn is None:
                conn = _Connection(socket.create_connection((self.host, self.port), self.timeout))
                self._local.conn = conn
                if self.credentials is not None:
                    request = codec.auth_request(self.credentials)
                    conn.exchange(request, codec.line_reply(self.address))
            return conn.exchange(payload, parser)
        except (OSError, ValueError) as exc:
            self._drop(conn)
            raise SessionStoreError(
                f"session store {self.address} failed ({exc!r}); check that it runs and "
                "that a primary is promoted"
            ) from exc
        except MalformedReply:
            self._drop(conn)
            raise

    def _drop(self, conn: _Connection | None) -> None:
        if conn is not None:
            conn.sock.close()
        self._local.conn = None


class _Connection:
    """A blocking socket and what has been read from it but not yet used."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def exchange(self, payload: bytes, parser: Generator[int, bytes, T]) -> T:
        self.sock.sendall(payload)
        need = next(parser)
        while True:
            chunk = self._line() if need == LINE else self._exactly(need)
            try:
                need = parser.send(chunk)
            except StopIteration as done:
                result: T = done.value
                return result

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by the session store")
        self.buf += chunk

    def _line(self) -> bytes:
        while (nl := self.buf.find(b"\n")) < 0:
            self._fill()
        line = bytes(self.buf[: nl + 1])
        del self.buf[: nl + 1]
        return line

    def _exactly(self, size: int) -> bytes:
        while len(self.buf) < size:
            self._fill()
        data = bytes(self.buf[:size])
        del self.buf[:size]
        return data
