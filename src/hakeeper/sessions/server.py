"""Run one session-store node: the client and peer listeners, the node's tasks, a clean shutdown.

The client port speaks memcached to anyone who can reach it (and asks for credentials when
an authfile is given); the peer port, opened only by a replicated node and bound to its
cluster address, runs `peer_auth`'s handshake (`peer_gate`) before a single command is parsed.
This is the one module that builds both the connections (`protocol`) and the node.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

import uvloop

from hakeeper.errors import ConfigError
from hakeeper.model.address import split_address
from hakeeper.sessions.node import Node
from hakeeper.sessions.node_config import NodeConfig
from hakeeper.sessions.peer_gate import HANDSHAKE_TIMEOUT, PeerGate
from hakeeper.sessions.protocol import MemcacheProtocol

log = logging.getLogger(__name__)

BACKLOG = 1024


async def serve(
    config: NodeConfig,
    *,
    promote_epoch: int | None = None,
    on_ready: Callable[[Node], None] | None = None,
) -> None:
    """Serve until cancelled. ``promote_epoch`` starts the node as primary of that epoch."""
    node = Node(config)
    if config.peers:
        node.secret()  # refuse to start without a usable secret file, naming the fix
    loop = asyncio.get_running_loop()
    peer_server: asyncio.Server | None = None
    if config.peers:
        # The peer port first: a node answering clients is also reachable by its peers.
        peer_host, peer_port = split_address(config.identity)
        try:
            tls = config.peer_tls
            peer_server = await loop.create_server(
                lambda: PeerGate(node),
                peer_host,
                peer_port,
                reuse_address=True,
                backlog=BACKLOG,
                ssl=tls.server_context() if tls is not None else None,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT if tls is not None else None,
            )
        except OSError as exc:
            raise ConfigError(
                f"sessions: cannot listen for peers on {config.identity}: {exc.strerror}; "
                "choose a free address with --peer-listen"
            ) from exc
    host, port = split_address(config.address, listen=True)
    try:
        server = await loop.create_server(
            lambda: MemcacheProtocol(node), host, port, reuse_address=True, backlog=BACKLOG
        )
    except OSError as exc:
        if peer_server is not None:
            peer_server.close()
        raise ConfigError(
            f"sessions: cannot listen on {config.address}: {exc.strerror}; "
            "choose a free address with --listen"
        ) from exc
    async with server:
        if peer_server is None:
            await _run(node, config, promote_epoch, on_ready)
            return
        async with peer_server:
            await _run(node, config, promote_epoch, on_ready)


async def _run(
    node: Node,
    config: NodeConfig,
    promote_epoch: int | None,
    on_ready: Callable[[Node], None] | None,
) -> None:
    ready = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(node.run(ready))
        await ready.wait()
        if promote_epoch is not None:
            reply = node.promote(promote_epoch)
            if reply != b"OK\r\n":
                raise ConfigError(f"sessions: cannot start as primary: {reply.decode().strip()}")
        log.info(
            "event=sessions.listening address=%s peer_address=%s role=%s peers=%s auth=%s",
            config.address,
            config.identity if config.peers else "-",
            node.role.value,
            ",".join(config.peers),
            "authfile" if config.authfile else "none",
        )
        if on_ready is not None:
            on_ready(node)


def run(config: NodeConfig, *, promote_epoch: int | None = None) -> None:
    """Blocking entry point for the CLI: uvloop, stop on SIGTERM/SIGINT."""

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, task.cancel)
        try:
            await serve(config, promote_epoch=promote_epoch)
        except asyncio.CancelledError:
            log.info("event=sessions.stopped address=%s", config.address)

    uvloop.run(main())
