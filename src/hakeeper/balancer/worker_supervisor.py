"""The parent of several worker processes on one port (SO_REUSEPORT): one view of health.

The parent process runs the health checks and the runtime API once, for all workers, and
owns the truth about every server; each worker (`hakeeper.balancer.worker_process`) serves
traffic. Why the parent checks rather than each worker: N workers checking would multiply
the probes a backend sees by N and let workers disagree about which servers are up for up
to ``fall × inter`` seconds. So:

- after every check round the parent sends each worker the up/down verdict of every server
  (a worker may have marked one down early from its own traffic — passive observation — and
  the next verdict brings it back once checks pass);
- admin states and weights set through the API go to every worker at once;
- workers report their counters every second; the parent sums them, so the API and
  ``/metrics`` show the whole balancer;
- a worker that dies is started again (at most once per second); SIGHUP reloads the parent
  and every worker.

Frontends need fixed ports here: with port 0 each worker would get its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path

import uvloop

from hakeeper.balancer.config import load_config
from hakeeper.balancer.control import ServerCommand
from hakeeper.balancer.health import HealthChecker
from hakeeper.balancer.service import Balancer
from hakeeper.errors import ConfigError, HakeeperError

log = logging.getLogger("hakeeper.balancer")
RESTART_PAUSE = 1.0


class Supervisor:
    def __init__(self, path: Path, workers: int) -> None:
        self.path = path
        self.count = workers
        config = load_config(path)
        if any(f.host_port[1] == 0 for f in config.frontend):
            raise ConfigError(
                f"{path}: with --workers > 1 every frontend needs a fixed port (not 0)"
            )
        # The parent's Balancer never listens: it holds state, runs checks and the API.
        self.state = Balancer(config, checks=False, listen=False, source=path)
        self.state.on_command.append(self.broadcast)
        self.state.on_reload.append(lambda: self.broadcast_line({"reload": True}))
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self.reports: dict[int, dict[str, dict[str, list[float]]]] = {}
        self._stop = asyncio.Event()

    # -- messages to workers ---------------------------------------------------------------

    def broadcast_line(self, order: dict[str, object]) -> None:
        line = (json.dumps(order) + "\n").encode()
        for proc in self.procs.values():
            if proc.stdin is not None and not proc.stdin.is_closing():
                proc.stdin.write(line)

    def broadcast(self, cmd: ServerCommand) -> None:
        self.broadcast_line(cmd.model_dump())

    def push_health(self) -> None:
        for server in self.state.all_servers():
            self.broadcast(
                ServerCommand(
                    backend=server.backend, server=server.name, action="up" if server.up else "down"
                )
            )

    # -- counters from workers -------------------------------------------------------------

    def absorb(self, slot: int, report: dict[str, dict[str, list[float]]]) -> None:
        self.reports[slot] = report
        for server in self.state.all_servers():
            rows = [
                r[server.backend][server.name]
                for r in self.reports.values()
                if server.name in r.get(server.backend, {})
            ]
            if not rows:
                continue
            server.requests = int(sum(r[0] for r in rows))
            server.connect_errors = int(sum(r[1] for r in rows))
            server.responses_5xx = int(sum(r[2] for r in rows))
            server.active = int(sum(r[3] for r in rows))
            server.hist_sum = sum(r[4] for r in rows)
            server.hist = [int(sum(r[5 + i] for r in rows)) for i in range(len(server.hist))]

    # -- processes -------------------------------------------------------------------------

    async def _run_worker(self, slot: int) -> None:
        while not self._stop.is_set():
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "hakeeper.balancer.worker_process",
                str(self.path),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            self.procs[slot] = proc
            log.info("event=worker_started slot=%d pid=%d", slot, proc.pid)
            self.push_health()
            assert proc.stdout is not None
            while line := await proc.stdout.readline():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    self.absorb(slot, json.loads(line)["counters"])
            code = await proc.wait()
            self.procs.pop(slot, None)
            if not self._stop.is_set():
                log.warning("event=worker_died slot=%d pid=%d code=%s", slot, proc.pid, code)
                await asyncio.sleep(RESTART_PAUSE)

    async def _checks(self) -> None:
        checkers = {
            name: HealthChecker(b, self.state.now) for name, b in self.state.backends.items()
        }
        while True:
            for name, backend in self.state.backends.items():
                checker = checkers.get(name) or checkers.setdefault(
                    name, HealthChecker(backend, self.state.now)
                )
                if backend.spec.check.type != "none":
                    await checker.round()
            self.push_health()
            inter = min((b.spec.check.inter for b in self.state.backends.values()), default=2.0)
            await asyncio.sleep(inter)

    async def _stop_workers(self) -> None:
        for proc in list(self.procs.values()):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in list(self.procs.values()):
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        reloads: set[asyncio.Task[None]] = set()

        def on_hup() -> None:
            task = loop.create_task(self._reload())
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, on_hup)
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        loop.add_signal_handler(signal.SIGINT, self.stop)
        await self.state.start()  # only the API: the parent binds no frontend
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(self._run_worker(i)) for i in range(self.count)]
                tasks.append(tg.create_task(self._checks()))
                await self._stop.wait()
                await self._stop_workers()
                for task in tasks:
                    task.cancel()
        finally:
            await self._stop_workers()
            self.state.stop()
            await self.state.run()

    async def _reload(self) -> None:
        try:
            await self.state.reload_file()
        except HakeeperError as exc:
            log.error("event=reload_refused file=%s reason=%r", self.path, str(exc))


def run_workers(path: Path, workers: int) -> None:
    async def main() -> None:
        await Supervisor(path, workers).run()

    uvloop.run(main())
