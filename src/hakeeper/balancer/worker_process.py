"""One worker process of a multi-process balancer: serves traffic, takes orders on stdin.

Started by `hakeeper.balancer.worker_supervisor.Supervisor` as
``python -m hakeeper.balancer.worker_process CONFIG``. It binds the frontends with
SO_REUSEPORT (the kernel spreads connections over the workers), runs no health checks and no
API, and:

- reads JSON lines on stdin: a `ServerCommand` (health verdicts from the parent's checks,
  admin states and weights from its API) or ``{"reload": true}``;
- writes its counters as one JSON line on stdout every second, for the parent's API and
  metrics;
- exits when stdin closes (the parent died) or on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

import uvloop
from pydantic import ValidationError

from hakeeper.balancer.config import load_config
from hakeeper.balancer.control import ServerCommand, apply_command
from hakeeper.balancer.service import Balancer
from hakeeper.errors import HakeeperError

log = logging.getLogger("hakeeper.balancer")
REPORT_EVERY = 1.0


def counters(balancer: Balancer) -> dict[str, dict[str, list[float]]]:
    report: dict[str, dict[str, list[float]]] = {}
    for backend in balancer.backends.values():
        report[backend.name] = {
            s.name: [
                s.requests,
                s.connect_errors,
                s.responses_5xx,
                s.active,
                s.hist_sum,
                *s.hist,
            ]
            for s in backend.servers.values()
        }
    return report


async def follow_orders(balancer: Balancer, path: Path) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        try:
            order = json.loads(line)
            if order.get("reload"):
                await balancer.reload(load_config(path))
            else:
                apply_command(balancer.backends, ServerCommand(**order), balancer.now())
        except (ValueError, ValidationError, HakeeperError) as exc:
            log.error("event=worker_order_refused reason=%r", str(exc))
    balancer.stop()


async def report(balancer: Balancer) -> None:
    out = sys.stdout
    while True:
        await asyncio.sleep(REPORT_EVERY)
        out.write(json.dumps({"counters": counters(balancer)}) + "\n")
        out.flush()


async def serve(path: Path) -> None:
    balancer = Balancer(load_config(path), checks=False, api=False, source=path)
    await balancer.start()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, balancer.terminate)
    loop.add_signal_handler(signal.SIGINT, balancer.terminate)
    async with asyncio.TaskGroup() as tg:
        orders = tg.create_task(follow_orders(balancer, path))
        reports = tg.create_task(report(balancer))
        await balancer.run()
        orders.cancel()
        reports.cancel()


def main() -> None:
    logging.basicConfig(
        level="WARNING", format="ts=%(asctime)s level=%(levelname)s worker=1 %(message)s"
    )
    try:
        uvloop.run(serve(Path(sys.argv[1])))
    except HakeeperError as exc:
        print(f"hakeeper balancer worker: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
