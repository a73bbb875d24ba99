"""A replica's forwarding of client commands to the primary it last accepted.

The node tells `Forwarder` where the primary is at each command (``primary_address``, set by
the primary's ``hk_hello``); the forwarder keeps one `Upstream` connection to that primary's
peer port and opens a new one when the primary changes. A command that arrives before any
primary is known (right after a promotion the new primary's hello may still be on its way)
waits as an orphan: the next hello sends it on, or it is answered ``SERVER_ERROR`` after the
forward timeout.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Coroutine
from ssl import SSLContext
from typing import Any

from hakeeper.config.secret_file import SecretFile
from hakeeper.errors import ConfigError
from hakeeper.sessions.boundary import Connection, Slot
from hakeeper.sessions.peer_auth import open_peer
from hakeeper.sessions.upstream import Upstream

# A command waiting for a primary: (payload, multi-line reply, noreply, slot, connection).
Orphan = tuple[bytes, bool, bool, Slot, Connection]


class Forwarder:
    """The replica's one connection to the primary, and the commands waiting for one."""

    def __init__(
        self,
        identity: str,
        timeout: float,
        secret_source: Callable[[], SecretFile],
        ssl: SSLContext | None,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self._identity = identity  # this node's own peer address: never forward to it
        self._timeout = timeout
        self._secret_source = secret_source
        self._ssl = ssl
        self._spawn = spawn  # runs a task owned by the node (or drops it when not running)
        self._upstream: Upstream | None = None
        self._orphans: deque[Orphan] = deque()

    def forward(
        self,
        primary: str | None,
        payload: bytes,
        multi: bool,
        noreply: bool,
        slot: Slot,
        conn: Connection,
    ) -> None:
        if primary is None or primary == self._identity:
            # Right after a promotion the new primary's hello may still be on its way.
            self._orphans.append((payload, multi, noreply, slot, conn))
            return
        upstream = self._upstream
        if upstream is None or upstream.closed or upstream.address != primary:
            upstream = self._connect(primary)
        upstream.send(payload, multi, noreply, slot, conn)

    def take_orphans(self) -> list[Orphan]:
        """The commands that waited for a primary (a hello named one): the caller sends them."""
        orphans = list(self._orphans)
        self._orphans.clear()
        return orphans

    def expire(self, now: float) -> None:
        """The ticker's check: fail a primary that does not answer in time, and orphans that
        waited too long for one."""
        upstream = self._upstream
        if upstream is not None:
            since = upstream.oldest_since()
            if since is not None and now - since > self._timeout:
                upstream.fail("timeout")
        self.fail_orphans(now - self._timeout)

    def fail_orphans(self, older_than: float) -> None:
        """Answer requests that waited too long for a primary to be known."""
        while self._orphans and self._orphans[0][3].since <= older_than:
            _, _, noreply, slot, conn = self._orphans.popleft()
            slot.data = b"" if noreply else b"SERVER_ERROR no primary known to this replica\r\n"
            conn.release()

    def drop(self, reason: str) -> None:
        """Close the connection to the primary; what it still owed is answered with an error."""
        if self._upstream is not None:
            self._upstream.fail(reason)
            self._upstream = None

    def _connect(self, address: str) -> Upstream:
        self.drop("primary changed")
        upstream = Upstream(address, self._closed)
        self._upstream = upstream

        async def connect() -> None:
            try:
                await open_peer(
                    address,
                    self._secret_source(),
                    lambda: upstream,
                    self._timeout,
                    ssl=self._ssl,
                )
            except (
                # socket.gaierror and PeerAuthError are OSErrors; a bad address raises
                # ValueError (UnicodeError for an unencodable host name), a port out of
                # range OverflowError, a missing secret ConfigError.
                OSError,
                TimeoutError,
                ValueError,
                OverflowError,
                ConfigError,
            ) as exc:
                upstream.fail(f"connect failed: {exc!r}")

        self._spawn(connect())
        return upstream

    def _closed(self, upstream: Upstream) -> None:
        if self._upstream is upstream:
            self._upstream = None
