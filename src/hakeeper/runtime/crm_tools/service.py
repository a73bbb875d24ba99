"""The local daemon's side of the tools: a unix socket answering from the cluster store.

The socket lives in the node's state dir (mode 0700) with mode 0600, and every request carries
an HMAC under the cluster secret over a fresh nonce (`protocol`): a local user who can reach
the socket but does not hold the secret gets nothing. Each connection is bounded: one line of
at most `protocol.MAX_LINE` bytes, `protocol.IO_TIMEOUT` to send it, at most `MAX_CLIENTS` at
once (more are closed at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Protocol

from hakeeper.config.secret_file import ClusterSecret
from hakeeper.errors import ConfigError, CoordError
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.roles import RUNNING_ROLES
from hakeeper.runtime.crm_tools.meta import cluster_properties, resource_meta
from hakeeper.runtime.crm_tools.protocol import (
    IO_TIMEOUT,
    MAX_LINE,
    NodeEntry,
    ProtocolError,
    ToolAnswer,
    ToolRequest,
    checked_attribute,
    decode_line,
    line,
    mac_matches,
)
from hakeeper.runtime.store import ClusterStore

log = logging.getLogger(__name__)

MAX_CLIENTS = 16
SOCKET_NAME = "crm-tools.sock"
# A unix socket path longer than this cannot be bound (sun_path is 108 bytes with its NUL).
MAX_SOCKET_PATH = 107
_INSTANCE_SUFFIX = re.compile(r":[0-9]+$")


class Secrets(Protocol):
    """Where the accepted secrets come from (a `SecretFile`, re-read on rotation)."""

    def get(self) -> ClusterSecret: ...


def socket_path(state_dir: Path) -> Path:
    return state_dir / SOCKET_NAME


class AttributeService:
    def __init__(
        self,
        *,
        node: str,
        spec: Callable[[], ClusterSpec],
        store: ClusterStore,
        secret: Secrets,
        path: Path,
    ) -> None:
        self._node = node
        self._spec = spec
        self._store = store
        self._secret = secret
        self.path = path
        self._clients = 0

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        """Listen on the socket (a stale one from an earlier run is replaced) until exit."""
        if len(os.fsencode(self.path)) > MAX_SOCKET_PATH:
            raise ConfigError(
                f"{self.path}: a unix socket path is at most {MAX_SOCKET_PATH} bytes; "
                "use a shorter state dir (hakeeper agent --state-dir)"
            )
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old = os.umask(0o177)  # created 0600: never a moment open to others
        try:
            server = await asyncio.start_unix_server(
                self._client, path=str(self.path), limit=MAX_LINE + 1
            )
        finally:
            os.umask(old)
        try:
            log.info("event=crm_tools_listening path=%s", self.path)
            yield
        finally:
            server.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._clients >= MAX_CLIENTS:
            writer.close()
            return
        self._clients += 1
        try:
            async with asyncio.timeout(IO_TIMEOUT):
                nonce = secrets.token_hex(16)
                writer.write(line({"nonce": nonce}))
                await writer.drain()
                message = decode_line(await reader.readline())
                request = self._authentic(message, nonce)
            # The store's own timeouts bound the answer; only the peer's pace is bounded here.
            answer = await self.answer(request)
            writer.write(line(answer.to_wire()))
            async with asyncio.timeout(IO_TIMEOUT):
                await writer.drain()
        except (ProtocolError, ValueError) as exc:
            log.warning("event=crm_tools_refused reason=%r", str(exc)[:200])
            with contextlib.suppress(ConnectionError):
                writer.write(line(ToolAnswer(error=f"refused: {str(exc)[:200]}").to_wire()))
        except (TimeoutError, ConnectionError) as exc:
            log.warning("event=crm_tools_dropped reason=%r", type(exc).__name__)
        finally:
            self._clients -= 1
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                async with asyncio.timeout(IO_TIMEOUT):
                    await writer.wait_closed()

    def _authentic(self, message: object, nonce: str) -> ToolRequest:
        if not isinstance(message, dict) or set(message) != {"mac", "request"}:
            raise ProtocolError("expected {mac, request}")
        request = ToolRequest.from_wire(message["request"])
        mac = message["mac"]
        if not isinstance(mac, str) or not mac_matches(
            self._secret.get().accepted, nonce, request, mac
        ):
            raise ProtocolError("the request is not signed with the cluster secret")
        return request

    async def answer(self, request: ToolRequest) -> ToolAnswer:
        """What the tools get for ``request`` (authenticated already)."""
        try:
            return await self._answer(request)
        except ConfigError as exc:
            return ToolAnswer(error=str(exc))
        except CoordError as exc:
            return ToolAnswer(error=f"the cluster store did not answer: {exc}")

    async def _answer(self, request: ToolRequest) -> ToolAnswer:
        spec = self._spec()
        if (
            request.op in ("attr_get", "attr_set", "attr_delete")
            and spec.node(request.node) is None
        ):
            return ToolAnswer(error=f"Could not map name={request.node} to a UUID", missing=True)
        if request.op == "attr_set":
            await self._store.set_attribute(checked_attribute(request))
            return ToolAnswer()
        if request.op == "attr_delete":
            await self._store.delete_attribute(request.node, request.name, request.lifetime)
            return ToolAnswer()
        if request.op == "attr_get":
            return await self._attribute(request)
        if request.op == "property":
            value = cluster_properties(spec).get(request.name)
            if value is None:
                return ToolAnswer(error="No such device or address", missing=True)
            return ToolAnswer(value=value)
        if request.op == "nodes":
            live = await self._store.live_attributes()
            return ToolAnswer(
                local=self._node,
                nodes=tuple(
                    NodeEntry(i, n.name, n.name in live.members or n.name == self._node)
                    for i, n in enumerate(spec.nodes, start=1)
                ),
            )
        resource = self._primitive(spec, request.resource)
        if resource is None:
            return ToolAnswer(error=f"Resource '{request.resource}' not found", missing=True)
        if request.op == "resource_meta":
            value = resource_meta(spec, resource).get(request.name.replace("_", "-"))
            if value is None:
                return ToolAnswer(
                    error=f"Attribute '{request.name}' not found for '{request.resource}'",
                    missing=True,
                )
            return ToolAnswer(value=value)
        live_instances = await self._store.live_instances()
        located = sorted(
            (s.node, "Promoted" if s.role == "promoted" else "")
            for s in live_instances.statuses
            if s.resource == resource
            and s.role in RUNNING_ROLES
            and s.node in live_instances.members
        )
        return ToolAnswer(located=tuple(located))

    async def _attribute(self, request: ToolRequest) -> ToolAnswer:
        live = await self._store.live_attributes()
        # A transient attribute lives as long as its node is a member; this node is alive
        # (it answers) even while it has not joined yet.
        alive = live.members | {self._node}
        for attr in live.attributes:
            if (attr.node, attr.name, attr.lifetime) == (
                request.node,
                request.name,
                request.lifetime,
            ) and (attr.lifetime == "forever" or attr.node in alive):
                return ToolAnswer(value=attr.value)
        return ToolAnswer(error="No such device or address", missing=True)

    @staticmethod
    def _primitive(spec: ClusterSpec, name: str) -> str | None:
        """The primitive an agent names: itself, an instance (``db:1``) or its clone."""
        base = _INSTANCE_SUFFIX.sub("", name)
        if spec.primitive(base) is not None:
            return base
        clone = next((c for c in spec.clones if c.id == base), None)
        if clone is not None and spec.primitive(clone.child) is not None:
            return clone.child
        return None
