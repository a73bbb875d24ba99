"""What a client and the hosts saw across a failover: the probe, the sampler, the report.

`VipWatch` runs two threads for a bounded time:

- the **probe**, inside the lab's client namespace: every ``interval`` (10 ms) a GET to
  ``http://VIP:port/``, each request its own task with its own ``timeout`` (a request
  hanging on a dead address never delays the next one); every result recorded.
- the **sampler**: every ``interval`` one netlink address dump per node namespace, recording
  which nodes hold the VIP.

Both threads set their own network namespace (`hakeeper.agents.netns.entered`) before
creating a socket, so nothing is ever sent from or to the root namespace. Times are the
system-wide monotonic clock, comparable with the moment a fault was injected.

`Report`: client-observed outage (last good answer before the fault → first good answer to a
request sent after it), the longest gap between good answers in a window (failback), and the
number of samples in which two nodes held the VIP (must be zero).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pyroute2 import IPRoute

from hakeeper.agents.netns import entered
from hakeeper.errors import HakeeperError
from hakeeper.lab.netns_topology import CLIENT, LabLayout

MAX_SECONDS = 600.0  # a watch never runs longer than this, whatever its caller does


class VipHolders:
    """Which nodes hold the lab's VIP now: one netlink socket per node namespace, opened once
    (each inside its namespace) and kept, so a sample every few ms costs one dump per node.
    A context manager: the sockets close on exit. One thread at a time."""

    def __init__(self, layout: LabLayout) -> None:
        self._layout = layout
        self._vip = ipaddress.ip_address(layout.vip)
        self._sockets: dict[str, IPRoute] = {}

    def __enter__(self) -> VipHolders:
        try:
            for node in self._layout.nodes:
                with entered(self._layout.host_ns(node)):
                    self._sockets[node] = IPRoute()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for ipr in self._sockets.values():
            ipr.close()
        self._sockets.clear()

    def now(self) -> tuple[str, ...]:
        held = []
        for node, ipr in self._sockets.items():
            with contextlib.suppress(OSError):  # a node being torn down answers nothing
                if any(
                    ipaddress.ip_address(m.get("IFA_ADDRESS")) == self._vip
                    for m in ipr.addr("dump")
                    if m.get("IFA_ADDRESS")
                ):
                    held.append(node)
        return tuple(held)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    sent: float
    done: float
    ok: bool
    body: str  # the answer's body, or why it failed


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    holders: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Report:
    """One fault's figures (seconds); None where the probe never recovered or never served."""

    outage: float | None
    failures: int
    samples: int
    dual_samples: int
    served_by_after: str


class VipWatch:
    def __init__(
        self,
        layout: LabLayout,
        port: int,
        *,
        interval: float = 0.010,
        timeout: float = 0.2,
        max_seconds: float = MAX_SECONDS,
    ) -> None:
        if not layout.client:
            raise ValueError("VipWatch needs a lab with a client namespace (lab up --client)")
        self.layout = layout
        self.port = port
        self.interval = interval
        self.timeout = timeout
        self.max_seconds = min(max_seconds, MAX_SECONDS)
        self.results: list[ProbeResult] = []
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._guard, args=(self._probe_thread,), name="vip-probe"),
            threading.Thread(target=self._guard, args=(self._sampler_thread,), name="vip-sampler"),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []
        if self._errors:
            raise RuntimeError(f"vip watch failed: {self._errors[0]!r}") from self._errors[0]

    def __enter__(self) -> VipWatch:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _guard(self, body: Callable[[], None]) -> None:
        try:
            body()
        except (OSError, RuntimeError, ValueError, HakeeperError) as exc:  # raised by stop()
            self._errors.append(exc)

    # --- sampler -------------------------------------------------------------------------------

    def _sampler_thread(self) -> None:
        with VipHolders(self.layout) as holders:
            deadline = time.monotonic() + self.max_seconds
            next_at = time.monotonic()
            while not self._stop.is_set() and time.monotonic() < deadline:
                at = time.monotonic()
                self.samples.append(Sample(at, holders.now()))
                next_at += self.interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    # --- probe ---------------------------------------------------------------------------------

    def _probe_thread(self) -> None:
        with entered(self.layout.host_ns(CLIENT)):
            asyncio.run(self._probe())

    async def _get(self) -> None:
        sent = time.monotonic()
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(self.layout.vip, self.port)
                writer.write(b"GET / HTTP/1.0\r\nHost: probe\r\n\r\n")
                data = await reader.read()
        except (OSError, TimeoutError) as exc:
            self.results.append(ProbeResult(sent, time.monotonic(), False, type(exc).__name__))
            return
        finally:
            if writer is not None:
                writer.close()
        ok = data.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200"))
        body = data.partition(b"\r\n\r\n")[2].decode(errors="replace").strip()
        self.results.append(ProbeResult(sent, time.monotonic(), ok, body))

    async def _probe(self) -> None:
        pending: set[asyncio.Task[None]] = set()
        deadline = time.monotonic() + self.max_seconds
        next_at = time.monotonic()
        while not self._stop.is_set() and time.monotonic() < deadline:
            task = asyncio.create_task(self._get())
            pending.add(task)
            task.add_done_callback(pending.discard)
            next_at += self.interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await asyncio.gather(*pending, return_exceptions=True)

    # --- analysis ------------------------------------------------------------------------------

    def good(self) -> list[ProbeResult]:
        return sorted((r for r in list(self.results) if r.ok), key=lambda r: r.done)

    def served_after(self, moment: float) -> ProbeResult | None:
        """The first good answer to a request sent after ``moment``."""
        after = [r for r in self.good() if r.sent > moment]
        return min(after, key=lambda r: r.done) if after else None

    def outage(self, fault_at: float) -> float | None:
        before = [r.done for r in self.good() if r.sent < fault_at]
        after = self.served_after(fault_at)
        if not before or after is None:
            return None
        return after.done - max(before)

    def longest_gap(self, start: float, end: float) -> float:
        """The longest time without a good answer between ``start`` and ``end`` (failback)."""
        times = [r.done for r in self.good()]
        inside = [t for t in times if start <= t <= end]
        before = [t for t in times if t < start]
        points = ([max(before)] if before else [start]) + inside + [end]
        return max(b - a for a, b in itertools.pairwise(points))

    def dual_samples(self, start: float = 0.0, end: float = float("inf")) -> int:
        return sum(1 for s in list(self.samples) if start <= s.at <= end and len(s.holders) > 1)

    def first_sample(self, after: float, predicate: Callable[[Sample], bool]) -> Sample | None:
        """The first sample taken after ``after`` for which ``predicate(sample)`` holds."""
        return next((s for s in list(self.samples) if s.at > after and predicate(s)), None)

    def report(self, fault_at: float) -> Report:
        after = self.served_after(fault_at)
        return Report(
            outage=self.outage(fault_at),
            failures=sum(1 for r in list(self.results) if not r.ok and r.sent >= fault_at),
            samples=len(self.samples),
            dual_samples=self.dual_samples(),
            served_by_after=after.body if after else "",
        )

    def wait_served_after(self, moment: float, timeout: float) -> ProbeResult | None:
        """Block until a request sent after ``moment`` was answered well (None: timed out)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.served_after(moment)
            if found is not None:
                return found
            time.sleep(0.05)
        return None
