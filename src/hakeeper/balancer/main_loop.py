"""Run one balancer process on uvloop until SIGTERM/SIGINT; SIGHUP reloads the file."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import uvloop

from hakeeper.balancer.config import load_config
from hakeeper.balancer.service import Balancer
from hakeeper.errors import HakeeperError

log = logging.getLogger("hakeeper.balancer")


async def serve_file(path: Path) -> None:
    balancer = Balancer(load_config(path), source=path)
    await balancer.start()
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        try:
            await balancer.reload_file()
        except HakeeperError as exc:
            log.error("event=reload_refused file=%s reason=%r", path, str(exc))

    def on_hup() -> None:
        task = loop.create_task(reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    loop.add_signal_handler(signal.SIGTERM, balancer.terminate)
    loop.add_signal_handler(signal.SIGINT, balancer.terminate)
    await balancer.run()


def run_file(path: Path) -> None:
    uvloop.run(serve_file(path))
