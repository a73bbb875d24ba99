"""Run one session-store node: the listening socket, the node's tasks, a clean shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

import uvloop

from hakeeper.errors import ConfigError
from hakeeper.sessions.addresses import split_address
from hakeeper.sessions.node import Node, NodeConfig
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
    loop = asyncio.get_running_loop()
    host, port = split_address(config.address)
    try:
        server = await loop.create_server(
            lambda: MemcacheProtocol(node), host, port, reuse_address=True, backlog=BACKLOG
        )
    except OSError as exc:
        raise ConfigError(
            f"sessions: cannot listen on {config.address}: {exc.strerror}; "
            "choose a free address with --listen"
        ) from exc
    ready = asyncio.Event()
    async with server, asyncio.TaskGroup() as tg:
        tg.create_task(node.run(ready))
        await ready.wait()
        if promote_epoch is not None:
            reply = node.promote(promote_epoch)
            if reply != b"OK\r\n":
                raise ConfigError(f"sessions: cannot start as primary: {reply.decode().strip()}")
        log.info(
            "event=sessions.listening address=%s role=%s peers=%s",
            config.address,
            node.role.value,
            ",".join(config.peers),
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
