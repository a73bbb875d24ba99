"""Run-time state of backends and their servers: health, admin state, weights, counters.

A `Backend` keeps the list of eligible servers (``candidates``) precomputed; it changes only
when a server's state, weight or admin state changes, so choosing a server per request is the
policy's pick over a ready list. Rules (HAProxy's):

- a server is eligible when it is up, its admin state is ``ready`` and its weight is above 0;
- ``backup`` servers are eligible only while no primary is (``candidates`` is the primaries,
  or else the backups);
- ``drain`` (admin state, or weight 0) takes no new clients, but requests already running
  finish and cookie-sticky clients keep reaching it; ``maint`` takes nothing new at all;
- slow start: for ``slowstart`` seconds after coming up a server's effective weight grows
  linearly from 1/… to its full weight (recomputed on the coarse tick, not per request).

Counters are plain ints bumped on the hot path and read at scrape time.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Iterable
from typing import Any, Literal

from hakeeper.balancer.config import BackendSpec, ServerSpec
from hakeeper.balancer.policies import Policy, make_policy

log = logging.getLogger("hakeeper.balancer")

Admin = Literal["ready", "drain", "maint"]
ADMIN_STATES: tuple[Admin, ...] = ("ready", "drain", "maint")

# Prometheus histogram bounds for hakeeper_balancer_response_seconds.
BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class Server:
    __slots__ = (
        "active",
        "admin",
        "backend",
        "backup",
        "check_fails_row",
        "check_failures",
        "check_ok_row",
        "connect_errors",
        "eff_weight",
        "hist",
        "hist_sum",
        "host",
        "idle",
        "name",
        "passive_errors_row",
        "port",
        "requests",
        "responses_5xx",
        "up",
        "up_since",
        "weight",
    )

    def __init__(self, spec: ServerSpec, backend: str) -> None:
        self.name = spec.name
        self.backend = backend
        self.host, self.port = spec.host_port
        self.weight = spec.weight
        self.backup = spec.backup
        self.admin: Admin = "ready"
        # Up until a check says otherwise (HAProxy starts servers up too): no first-check wait.
        self.up = True
        self.up_since = -math.inf
        self.eff_weight = spec.weight
        self.active = 0
        self.requests = 0
        self.connect_errors = 0
        self.responses_5xx = 0
        self.check_failures = 0
        self.check_fails_row = 0
        self.check_ok_row = 0
        self.passive_errors_row = 0
        self.hist = [0] * (len(BUCKETS) + 1)
        self.hist_sum = 0.0
        self.idle: list[Any] = []  # idle keep-alive upstream connections (http mode)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def state(self) -> str:
        if self.admin == "maint":
            return "maint"
        if not self.up:
            return "down"
        if self.admin == "drain" or self.weight == 0:
            return "drain"
        return "up"

    def host_port_is(self, spec: ServerSpec) -> bool:
        return (self.host, self.port) == spec.host_port

    def observe_response(self, seconds: float, status: int) -> None:
        self.hist[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.hist_sum += seconds
        if status >= 500:
            self.responses_5xx += 1

    def close_idle(self) -> None:
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()

    def as_dict(self) -> dict[str, object]:
        return {
            "backend": self.backend,
            "name": self.name,
            "address": self.address,
            "state": self.state,
            "up": self.up,
            "admin": self.admin,
            "weight": self.weight,
            "effective_weight": self.eff_weight,
            "backup": self.backup,
            "active": self.active,
            "requests": self.requests,
            "connect_errors": self.connect_errors,
            "responses_5xx": self.responses_5xx,
            "check_failures": self.check_failures,
        }


class Backend:
    def __init__(self, spec: BackendSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.policy: Policy = make_policy(spec.policy, spec.hash_balance_factor)
        self.servers: dict[str, Server] = {s.name: Server(s, spec.name) for s in spec.servers}
        self.candidates: list[Server] = []
        self.refresh()

    # -- choosing --------------------------------------------------------------------------

    def refresh(self) -> None:
        """Recompute the eligible list after any state, weight or admin change."""

        def eligible(s: Server) -> bool:
            return s.up and s.admin == "ready" and s.weight > 0

        primaries = [s for s in self.servers.values() if not s.backup and eligible(s)]
        self.candidates = primaries or [s for s in self.servers.values() if eligible(s)]

    def pick(self, key: int = 0, exclude: Iterable[Server] = ()) -> Server | None:
        if exclude:
            skip = set(map(id, exclude))
            rest = [s for s in self.candidates if id(s) not in skip]
            return self.policy.pick(rest, key)
        return self.policy.pick(self.candidates, key)

    def sticky(self, name: str) -> Server | None:
        """The server a stickiness cookie names, if it may still take that client."""
        server = self.servers.get(name)
        if server is None or not server.up or server.admin == "maint":
            return None
        return server

    # -- state changes ---------------------------------------------------------------------

    def set_up(self, server: Server, up: bool, now: float, why: str) -> None:
        if server.up == up:
            return
        server.up = up
        server.check_fails_row = server.check_ok_row = server.passive_errors_row = 0
        if up:
            server.up_since = now
            server.eff_weight = self._slow_weight(server, now)
        else:
            server.close_idle()
        log.warning(
            "event=server_%s backend=%s server=%s address=%s reason=%s",
            "up" if up else "down",
            self.name,
            server.name,
            server.address,
            why.replace(" ", "_"),
        )
        self.refresh()

    def set_admin(self, server: Server, admin: Admin) -> None:
        server.admin = admin
        log.info("event=server_admin backend=%s server=%s admin=%s", self.name, server.name, admin)
        self.refresh()

    def set_weight(self, server: Server, weight: int, now: float) -> None:
        if not 0 <= weight <= 256:
            raise ValueError(f"weight {weight} out of range 0..256")
        server.weight = weight
        server.eff_weight = self._slow_weight(server, now)
        log.info(
            "event=server_weight backend=%s server=%s weight=%d", self.name, server.name, weight
        )
        self.refresh()

    def observe_connect_error(self, server: Server, now: float) -> None:
        server.connect_errors += 1
        self.observe_error(server, now, "connect error")

    def observe_error(self, server: Server, now: float, why: str) -> None:
        server.passive_errors_row += 1
        if server.passive_errors_row >= self.spec.passive.error_limit:
            self.set_up(server, False, now, f"passive: {why}")

    def observe_success(self, server: Server) -> None:
        server.passive_errors_row = 0

    def record_check(self, server: Server, ok: bool, now: float, detail: str) -> None:
        """An active check result: ``fall`` failures in a row down, ``rise`` successes up."""
        check = self.spec.check
        if ok:
            server.check_fails_row = 0
            server.check_ok_row += 1
            if not server.up and server.check_ok_row >= check.rise:
                self.set_up(server, True, now, f"check passed {check.rise} times")
        else:
            server.check_failures += 1
            server.check_ok_row = 0
            server.check_fails_row += 1
            if server.up and server.check_fails_row >= check.fall:
                self.set_up(server, False, now, f"check failed {check.fall} times: {detail}")

    def _slow_weight(self, server: Server, now: float) -> int:
        window = self.spec.slowstart
        elapsed = now - server.up_since
        if window <= 0 or elapsed >= window or server.weight == 0:
            return server.weight
        return max(1, math.ceil(server.weight * elapsed / window))

    def tick(self, now: float) -> None:
        """Coarse periodic work: slow-start weights."""
        if self.spec.slowstart <= 0:
            return
        changed = False
        for server in self.servers.values():
            weight = self._slow_weight(server, now)
            if weight != server.eff_weight:
                server.eff_weight = weight
                changed = True
        if changed:
            self.refresh()

    def reconfigure(self, spec: BackendSpec) -> None:
        """Take a reloaded spec: keep state of servers that stay, add new, drop removed.

        Requests running on a removed server finish on their own connection.
        """
        old = self.servers
        servers: dict[str, Server] = {}
        for sspec in spec.servers:
            kept = old.get(sspec.name)
            if kept is not None and kept.host_port_is(sspec):
                kept.weight = kept.eff_weight = sspec.weight
                kept.backup = sspec.backup
                servers[sspec.name] = kept
            else:
                servers[sspec.name] = Server(sspec, spec.name)
        for name, server in old.items():
            if servers.get(name) is not server:
                server.close_idle()
        if spec.policy != self.spec.policy:
            self.policy = make_policy(spec.policy, spec.hash_balance_factor)
        self.spec = spec
        self.servers = servers
        self.refresh()
