"""A blocking memcached-protocol client for WSGI apps: get, set, touch, delete.

One socket per thread (WSGI servers run a request per thread); every call has a timeout;
failures raise `SessionStoreError` and drop the socket so the next call reconnects.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import TypeVar

from hakeeper.errors import SessionStoreError
from hakeeper.model.address import split_address

ERROR_PREFIXES = (b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")
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
        def exchange(sock: socket.socket, reader: _Reader) -> bytes | None:
            sock.sendall(b"get %s\r\n" % key)
            value = None
            while True:
                line = self._checked(reader.line())
                if line == b"END":
                    return value
                parts = line.split(b" ")
                if parts[0] != b"VALUE" or len(parts) < 4:
                    raise SessionStoreError(f"session store {self.address}: bad reply {line!r}")
                value = reader.exactly(int(parts[3]) + 2)[:-2]

        return self._call(exchange)

    def set(self, key: bytes, data: bytes, exptime: int) -> bytes:
        return self._line(b"set %s 0 %d %d\r\n%s\r\n" % (key, exptime, len(data), data))

    def touch(self, key: bytes, exptime: int) -> bytes:
        return self._line(b"touch %s %d\r\n" % (key, exptime))

    def delete(self, key: bytes) -> bytes:
        return self._line(b"delete %s\r\n" % key)

    def _line(self, payload: bytes) -> bytes:
        def exchange(sock: socket.socket, reader: _Reader) -> bytes:
            sock.sendall(payload)
            return self._checked(reader.line())

        return self._call(exchange)

    def _call(self, exchange: Callable[[socket.socket, _Reader], T]) -> T:
        conn = getattr(self._local, "conn", None)
        try:
            if conn is None:
                sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
                conn = (sock, _Reader(sock))
                self._local.conn = conn
                if self.credentials is not None:
                    data = self.credentials
                    sock.sendall(b"set auth 0 0 %d\r\n%s\r\n" % (len(data), data))
                    self._checked(conn[1].line())
            return exchange(*conn)
        except (OSError, ValueError) as exc:
            if conn is not None:
                conn[0].close()
            self._local.conn = None
            raise SessionStoreError(
                f"session store {self.address} failed ({exc!r}); check that it runs and "
                "that a primary is promoted"
            ) from exc

    def _checked(self, line: bytes) -> bytes:
        if line.startswith(ERROR_PREFIXES):
            raise SessionStoreError(f"session store {self.address} answered {line.decode()!r}")
        return line


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by the session store")
        self.buf += chunk

    def line(self) -> bytes:
        while (nl := self.buf.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self.buf[:nl])
        del self.buf[: nl + 2]
        return line

    def exactly(self, size: int) -> bytes:
        while len(self.buf) < size:
            self._fill()
        data = bytes(self.buf[:size])
        del self.buf[:size]
        return data
