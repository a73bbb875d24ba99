"""What every operator command shares: the cluster file, a bounded client, exit codes.

Each command is an async function ``(coord, spec, ...) -> int`` (its exit status) that tests
run on `tests.fakes.LocalCoordinator`; `run_command` is the thin synchronous face: it loads
the cluster file, opens a client with `open_client` (the one seam tests replace), runs the
body with every engine call under a deadline, closes the client, and turns a `HakeeperError`
into one line on stderr and exit status 2.

Exit statuses: 0 done / healthy; 1 the cluster has a problem (``status``: something blocked
or failed) or an operation did not finish (``restart`` timed out); 2 bad input (unknown
resource or node, invalid file: nothing was written), no quorum, or engine unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from hakeeper.api import hints, targets
from hakeeper.api.hints import DEFAULT_CONFIG as DEFAULT_CONFIG  # the commands' default
from hakeeper.cli import remote
from hakeeper.config import load_spec
from hakeeper.config.loader import spec_from_text
from hakeeper.coord.base import KV, Cmp, Coordinator, Lease, Op, TxnResult, WatchEvent
from hakeeper.errors import ConfigError, CoordError, HakeeperError, Unreachable
from hakeeper.model.cluster import ClusterSpec
from hakeeper.runtime.connect import open_coordinator

#: Deadline of one engine call. Generous against a leader change (a few election timeouts of
#: the ``wan`` profile), short enough that a script learns "unreachable" within seconds.
OP_TIMEOUT = 10.0
#: Deadline of joining the engine as a client (raft: catching up with the log).
CONNECT_TIMEOUT = 20.0
CLOSE_TIMEOUT = 5.0

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        envvar="HAKEEPER_CONFIG",
        help="The cluster file (TOML); default $HAKEEPER_CONFIG or /etc/hakeeper/cluster.toml.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

Body = Callable[[Coordinator, ClusterSpec], Awaitable[int]]


# The names an operator types are checked where every face (CLI, API) checks them.
wall = targets.wall
store_of = targets.store_of
resource_ids = targets.resource_ids
require_resource = targets.require_resource
require_node = targets.require_node
primitives_of = targets.primitives_of
describe = targets.describe


# --- the client ------------------------------------------------------------------------------


async def open_client(spec: ClusterSpec) -> Coordinator:
    """A non-voting client of the cluster's engine. Tests replace this function."""
    return await open_coordinator(spec, ready_timeout=CONNECT_TIMEOUT)


def _late(what: str, seconds: float) -> Unreachable:
    return Unreachable(
        f"the coordination engine did not answer {what} within {seconds:g}s "
        "(unreachable, or no quorum: is a majority of nodes up?)"
    )


class Bounded:
    """A `Coordinator` whose every call has a deadline (a watch is a stream: its consumer
    bounds it). A missed deadline is `Unreachable`, like a backend's own timeout."""

    def __init__(self, inner: Coordinator, timeout: float = OP_TIMEOUT) -> None:
        self.inner = inner
        self.timeout = timeout

    @property
    def backend(self) -> str:
        return self.inner.backend

    @property
    def min_ttl(self) -> float:
        return self.inner.min_ttl

    @contextlib.asynccontextmanager
    async def _deadline(self, what: str) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self.timeout):
                yield
        except TimeoutError as exc:
            raise _late(what, self.timeout) from exc

    async def grant(self, ttl: float) -> Lease:
        async with self._deadline("a lease grant"):
            return await self.inner.grant(ttl)

    async def keepalive(self, lease: Lease) -> bool:
        async with self._deadline("a keepalive"):
            return await self.inner.keepalive(lease)

    async def revoke(self, lease: Lease) -> None:
        async with self._deadline("a revoke"):
            await self.inner.revoke(lease)

    async def lease_renewed_ago(self, lease_id: int, member: str | None = None) -> float | None:
        return await self.inner.lease_renewed_ago(lease_id, member)

    async def get(self, key: str) -> KV | None:
        async with self._deadline("a read"):
            return await self.inner.get(key)

    async def range(self, prefix: str) -> list[KV]:
        async with self._deadline("a read"):
            return await self.inner.range(prefix)

    async def put(self, key: str, value: bytes, lease: Lease | None = None) -> int:
        async with self._deadline("a write"):
            return await self.inner.put(key, value, lease)

    async def delete(self, key: str, *, prefix: bool = False) -> int:
        async with self._deadline("a delete"):
            return await self.inner.delete(key, prefix=prefix)

    async def txn(
        self, compare: Sequence[Cmp], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        async with self._deadline("a transaction"):
            return await self.inner.txn(compare, success, failure)

    def watch(self, prefix: str, start_revision: int | None = None) -> AsyncGenerator[WatchEvent]:
        return self.inner.watch(prefix, start_revision)

    async def has_quorum(self) -> bool:
        # The contract says it never raises; a missed deadline still means "cannot commit".
        try:
            async with asyncio.timeout(self.timeout):
                return await self.inner.has_quorum()
        except (TimeoutError, CoordError):
            return False

    async def revision(self) -> int:
        async with self._deadline("a revision read"):
            return await self.inner.revision()

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError, CoordError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.inner.close()


@contextlib.asynccontextmanager
async def connected(spec: ClusterSpec) -> AsyncIterator[Coordinator]:
    """An open, bounded client, closed on the way out whatever happens."""
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT + CLOSE_TIMEOUT):
            coord = await open_client(spec)
    except TimeoutError as exc:
        raise _late("the client's connect", CONNECT_TIMEOUT) from exc
    bounded = Bounded(coord)
    try:
        yield bounded
    finally:
        await bounded.close()


async def spec_in_force(coord: Coordinator, spec: ClusterSpec) -> ClusterSpec:
    """The config the cluster runs: the one ``config apply`` stored, else the local file's.

    So that names and plans match what the controller uses even when this machine's file
    is older than the last ``config apply``."""
    try:
        text = await store_of(coord, spec).stored_config()
        if text is None:
            return spec
        stored = spec_from_text(text, "stored config")
    except ConfigError as exc:
        print(
            f"hakeeper: warning: the stored config does not load ({exc}); using the local file",
            file=sys.stderr,
        )
        return spec
    return stored if stored.options.name == spec.options.name else spec


def run_command(
    name: str,
    config: Path,
    body: Body,
    *,
    interrupt_code: int = 130,
    in_force: bool = True,
    through_api: remote.Call | None = None,
) -> None:
    """Load ``config``, run ``body`` on a client, exit with its status; or, with ``--url``,
    send ``through_api`` to the API (which runs the same body) and print its lines.

    ``interrupt_code``: the status after Ctrl-C (0 for ``--watch``/``--follow``, where it is
    the normal way out). ``in_force``: give ``body`` the stored config when there is one."""
    hints.use_config(config)
    if remote.current() is not None:
        run_through_api(name, through_api)
    try:
        spec = load_spec(config)
        code = asyncio.run(_run(spec, body, in_force))
    except KeyboardInterrupt:
        code = interrupt_code
    except HakeeperError as exc:
        typer.echo(f"hakeeper {name}: {describe(exc)}", err=True)
        raise typer.Exit(2) from exc
    raise typer.Exit(code)


def run_through_api(name: str, call: remote.Call | None) -> NoReturn:
    """Send ``call`` to the ``--url`` API, print the lines the action returned, exit with
    its status (2 with the API's words when refused or unreachable)."""
    api = remote.current()
    try:
        if api is None or call is None:
            raise ConfigError(f"{name} does not work through --url; run it on a cluster host")
        done = remote.answer(api, call)
    except HakeeperError as exc:
        typer.echo(f"hakeeper {name}: {describe(exc)}", err=True)
        raise typer.Exit(2) from exc
    for line in done["lines"]:
        typer.echo(line)
    raise typer.Exit(done["exit_code"])


async def _run(spec: ClusterSpec, body: Body, in_force: bool) -> int:
    async with connected(spec) as coord:
        return await body(coord, await spec_in_force(coord, spec) if in_force else spec)
