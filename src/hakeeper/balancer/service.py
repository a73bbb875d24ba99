"""`Balancer`: listeners, backends, health checks and deadline sweeps of one process.

``await balancer.start()`` binds every frontend (SO_REUSEPORT, so N worker processes can
share a port) and ``run()`` owns the background tasks (sweep per frontend, health round per
backend) in one TaskGroup until ``stop()``. ``reload(config)`` applies a new config without
dropping a connection: servers that stay keep their state and pooled connections, frontends
whose bind is unchanged keep their listener, new binds are opened and removed ones closed
(their open connections finish on their own).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

from aiohttp import web

from hakeeper.balancer import hard_stop
from hakeeper.balancer.config import BalancerConfig, FrontendSpec, load_config
from hakeeper.balancer.control import ServerCommand, apply_command
from hakeeper.balancer.control_api import start_api
from hakeeper.balancer.health import HealthChecker
from hakeeper.balancer.http_downstream import HttpDownstream
from hakeeper.balancer.runtime import FrontendRuntime
from hakeeper.balancer.servers import Backend, Server
from hakeeper.balancer.tcp_relay import TcpDownstream
from hakeeper.errors import ConfigError
from hakeeper.model.address import split_address

log = logging.getLogger("hakeeper.balancer")


async def follow_clone(backend: Backend) -> None:
    """Keep ``backend``'s servers equal to its clone's live instances (a store client)."""
    # Imported here: a standalone balancer never loads the cluster runtime and its engines.
    from hakeeper.balancer.clone_backends import CloneFollower
    from hakeeper.config.loader import load_spec
    from hakeeper.runtime.connect import open_coordinator
    from hakeeper.runtime.keys import KeySpace
    from hakeeper.runtime.store import ClusterStore

    clone = backend.spec.clone
    assert clone is not None
    spec = load_spec(Path(clone.cluster_config))
    coord = await open_coordinator(spec)
    try:
        addresses = {n.name: n.address for n in spec.nodes}
        store = ClusterStore(coord, KeySpace(spec.options.name))
        await CloneFollower(store, addresses, backend).run()
    finally:
        await coord.close()


def check_clone_roles(config: BalancerConfig) -> None:
    """Refuse a ``clone.role`` its cluster file cannot satisfy before anything runs: found by
    the follower, it would end the balancer's task group instead of refusing a file."""
    clones = [b.clone for b in config.backend if b.clone is not None and b.clone.role]
    if not clones:
        return
    from hakeeper.balancer.clone_backends import require_promotable
    from hakeeper.config.loader import load_spec

    for clone in clones:
        require_promotable(load_spec(Path(clone.cluster_config)), clone.resource, clone.role)


def files_needed(config: BalancerConfig) -> int:
    """File descriptors the limits allow this process to use: each served http or tcp
    connection has a client and an upstream socket, a waiting one only its client's, plus
    the idle pools and a margin for listeners, checks, the API and logs."""
    conns = sum(2 * f.maxconn + f.maxqueue for f in config.frontend)
    pooled = sum(len(b.servers) for b in config.backend) * config.limits.pool_idle_per_server
    return conns + pooled + 256


def raise_file_limit(needed: int) -> None:
    """Raise the soft RLIMIT_NOFILE toward ``needed`` (as HAProxy does from its maxconn)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < needed:
        log.warning(
            "event=file_limit_low open_files=%d needed=%d fix=raise_LimitNOFILE_or_lower_maxconn",
            soft,
            needed,
        )


class Balancer:
    def __init__(
        self,
        config: BalancerConfig,
        *,
        checks: bool = True,
        api: bool = True,
        listen: bool = True,
        source: Path | None = None,
    ) -> None:
        self.config = config
        self.listen = listen
        self.checks = checks
        self.api = api
        self.source = source
        # Called with every command applied here (the multi-worker parent forwards them).
        self.on_command: list[Callable[[ServerCommand], None]] = []
        self.on_reload: list[Callable[[], None]] = []
        self._api_runner: web.AppRunner | None = None
        self.backends: dict[str, Backend] = {b.name: Backend(b) for b in config.backend}
        self.frontends: dict[str, FrontendRuntime] = {}
        # Frontends removed by a reload whose connections are still open: still swept.
        self._retired: list[FrontendRuntime] = []
        self._listeners: dict[str, asyncio.Server] = {}
        self._stop = asyncio.Event()
        self._changed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def now(self) -> float:
        return self.loop.time()

    def port_of(self, frontend: str) -> int:
        """The port a frontend listens on (useful with port 0 in tests)."""
        sockets = self._listeners[frontend].sockets
        return int(sockets[0].getsockname()[1])

    def server(self, backend: str, name: str) -> Server:
        try:
            return self.backends[backend].servers[name]
        except KeyError:
            raise ConfigError(
                f"no server {backend}/{name}; `hakeeper lb servers` lists them"
            ) from None

    # -- lifecycle -------------------------------------------------------------------------

    def all_servers(self) -> Iterator[Server]:
        for backend in self.backends.values():
            yield from backend.servers.values()

    def command(self, cmd: ServerCommand) -> Server:
        server = apply_command(self.backends, cmd, self.now())
        for hook in self.on_command:
            hook(cmd)
        return server

    async def reload_file(self) -> None:
        if self.source is None:
            raise ConfigError("this balancer was not started from a file; nothing to re-read")
        await self.reload(load_config(self.source))
        for hook in self.on_reload:
            hook()

    @property
    def api_port(self) -> int | None:
        if self._api_runner is None:
            return None
        for address in self._api_runner.addresses:
            return int(address[1])
        return None

    async def start(self) -> None:
        check_clone_roles(self.config)
        if self.listen:
            raise_file_limit(files_needed(self.config))
        for spec in self.config.frontend if self.listen else ():
            await self._open_frontend(spec)
        if self.api and self.config.api.bind is not None:
            host, port = split_address(self.config.api.bind, listen=True)
            self._api_runner = await start_api(self, host, port)

    async def _open_frontend(self, spec: FrontendSpec) -> None:
        rt = FrontendRuntime(
            spec,
            self.backends[spec.backend],
            self.config.timeouts,
            self.config.limits,
            self.loop,
        )
        host, port = spec.host_port
        factory = (
            (lambda: HttpDownstream(rt)) if spec.mode == "http" else (lambda: TcpDownstream(rt))
        )
        try:
            listener = await self.loop.create_server(
                factory, host, port, reuse_port=True, backlog=1024
            )
        except OSError as exc:
            raise ConfigError(
                f"frontend {spec.name}: cannot listen on {spec.bind}: {exc.strerror}; "
                "choose a free address"
            ) from exc
        for sock in listener.sockets:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.frontends[spec.name] = rt
        self._listeners[spec.name] = listener
        log.info(
            "event=frontend_listening frontend=%s bind=%s mode=%s", spec.name, spec.bind, spec.mode
        )

    async def run(self) -> None:
        """Own the background tasks until `stop`; restart them after a reload."""
        while True:
            self._changed.clear()
            async with asyncio.TaskGroup() as tg:
                self._retired = [rt for rt in self._retired if rt.conns]
                swept = [*self.frontends.values(), *self._retired]
                tasks = [tg.create_task(rt.run_sweeper()) for rt in swept]
                if self.checks:
                    tasks += [
                        tg.create_task(HealthChecker(b, self.now).run())
                        for b in self.backends.values()
                    ]
                tasks += [
                    tg.create_task(follow_clone(b))
                    for b in self.backends.values()
                    if b.spec.clone is not None
                ]
                stop = tg.create_task(self._stop.wait())
                changed = tg.create_task(self._changed.wait())
                await asyncio.wait([stop, changed], return_when=asyncio.FIRST_COMPLETED)
                if self._stop.is_set():
                    # Serving ends first: a task may take a while to wind down (a clone
                    # follower's engine client), and a stopped balancer must not relay
                    # meanwhile (the cluster may already route to another one).
                    await self._close()
                for task in [*tasks, stop, changed]:
                    task.cancel()
            if self._stop.is_set():
                return

    def stop(self) -> None:
        self._stop.set()

    def terminate(self) -> None:
        """SIGTERM: `stop`, and exit the process ``timeouts.hard_stop`` later whatever is
        still winding down then (`hakeeper.balancer.hard_stop`)."""
        self.stop()
        hard_stop.arm(self.config.timeouts.hard_stop)

    async def _close(self) -> None:
        if self._api_runner is not None:
            await self._api_runner.cleanup()
            self._api_runner = None
        for listener in self._listeners.values():
            listener.close()
        for rt in [*self.frontends.values(), *self._retired]:
            rt.batch.flush()
            for conn in list(rt.conns):
                transport = getattr(conn, "transport", None)
                if transport is not None:
                    transport.close()
        for backend in self.backends.values():
            for server in backend.servers.values():
                server.close_idle()
        for listener in self._listeners.values():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await listener.wait_closed()

    async def reload(self, config: BalancerConfig) -> None:
        """Apply a new config in place; existing connections are not touched."""
        check_clone_roles(config)
        for bspec in config.backend:
            kept = self.backends.get(bspec.name)
            if kept is None:
                self.backends[bspec.name] = Backend(bspec)
                continue
            if bspec.clone is not None and bspec.clone == kept.spec.clone:
                # The file lists no servers for a clone: keep the ones its follower found.
                bspec = bspec.model_copy(update={"servers": kept.spec.servers})
            kept.reconfigure(bspec)
        for name in [n for n in self.backends if n not in {b.name for b in config.backend}]:
            for server in self.backends.pop(name).servers.values():
                server.close_idle()
        wanted = {f.name: f for f in config.frontend}
        for name in list(self.frontends):
            spec = wanted.get(name)
            rt = self.frontends[name]
            if spec is None or spec.bind != rt.spec.bind or spec.mode != rt.spec.mode:
                self._listeners.pop(name).close()
                self._retired.append(self.frontends.pop(name))
        self.config = config
        for spec in config.frontend if self.listen else ():
            rt_kept = self.frontends.get(spec.name)
            if rt_kept is None:
                await self._open_frontend(spec)
            else:
                rt_kept.spec = spec
                rt_kept.set_maxconn(spec.maxconn)
                rt_kept.backend = self.backends[spec.backend]  # also re-reads its policy
                rt_kept.timeouts = config.timeouts
                rt_kept.limits = config.limits
        log.info("event=reloaded frontends=%d backends=%d", len(self.frontends), len(self.backends))
        self._changed.set()


@contextlib.asynccontextmanager
async def serving(
    config: BalancerConfig, *, checks: bool = True, source: Path | None = None
) -> AsyncIterator[Balancer]:
    """Run a balancer for the duration of a ``with`` block (tests, embedding)."""
    balancer = Balancer(config, checks=checks, source=source)
    await balancer.start()
    task = asyncio.create_task(balancer.run())
    try:
        yield balancer
    finally:
        balancer.stop()
        async with asyncio.timeout(10):
            await task
