"""What `hakeeper check` finds unsafe in a valid configuration, and how to fix it.

The schema and references are `hakeeper.config`'s job; this module judges the *safety* of a
valid file against shared/DESIGN.md section 4: can a lost node be fenced or trusted to have
self-fenced, can the engine keep quorum through one failure, can it honour the lease TTL the
profile asks for, does the watchdog's countdown fit inside the lease, are the fence agents
there at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from hakeeper.errors import ConfigError
from hakeeper.fencing.fence_agents import FenceAgentRunner
from hakeeper.fencing.watchdog import watchdog_timeout
from hakeeper.model.cluster import ClusterSpec
from hakeeper.runtime.fence_plan import device_of, power_fences

Level = Literal["error", "warning"]

#: etcd's defaults (heartbeat 100 ms, election 1000 ms) give a minimum lease TTL of
#: ceil(1.5 × election) = 2 s; a shorter TTL is silently raised by etcd.
ETCD_DEFAULT_MIN_TTL = math.ceil(1.5 * 1.0)


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    what: str
    fix: str


def safety_findings(spec: ClusterSpec, runner: FenceAgentRunner | None = None) -> list[Finding]:
    timing = spec.timing
    out: list[Finding] = []
    exclusive = sorted(p.id for p in spec.primitives if p.meta.exclusive)
    watchdog_everywhere = spec.watchdog or all(n.watchdog for n in spec.nodes)

    if exclusive and not spec.options.fencing and not watchdog_everywhere:
        out.append(
            Finding(
                "error",
                f"fencing is off, no node has a required watchdog, and {', '.join(exclusive)} "
                "are exclusive: a node that vanishes while holding one can never be proven off, "
                "so its resources stay blocked (or, if forced, run twice)",
                "turn fencing on with a device under [fencing.devices], or set [fencing] "
                'watchdog = "required" on nodes with a watchdog',
            )
        )
    if spec.options.fencing and not spec.fence_devices and not watchdog_everywhere and exclusive:
        out.append(
            Finding(
                "warning",
                "fencing is on but there is no fence device and no required watchdog: a lost "
                "node's exclusive resources wait for `hakeeper fence --confirm`",
                "add a device under [fencing.devices] (fence_ipmilan, fence_virsh, …)",
            )
        )

    members = (
        len(spec.coordination.endpoints) if spec.coordination.backend == "etcd" else len(spec.nodes)
    )
    if members and members % 2 == 0:
        out.append(
            Finding(
                "warning",
                f"{members} coordination members: an even count tolerates no more failures than "
                f"{members - 1} and splits evenly in a partition, where neither side has quorum",
                f"use {members - 1} or {members + 1} members (a small arbiter node will do)",
            )
        )

    if spec.coordination.backend == "etcd" and timing.member_ttl < ETCD_DEFAULT_MIN_TTL:
        out.append(
            Finding(
                "error",
                f"profile {timing.name!r} asks for a {timing.member_ttl:g}s member lease, shorter "
                f"than etcd grants with its default election timeout ({ETCD_DEFAULT_MIN_TTL}s): "
                "the agent will refuse the lease (TTLTooShort)",
                "use the default profile with etcd, or run etcd with --election-timeout ≤ "
                f"{timing.member_ttl / 1.5 * 1000:.0f} ms and a matching heartbeat",
            )
        )

    if spec.suspect_after is not None and spec.coordination.backend == "etcd":
        out.append(
            Finding(
                "warning",
                "suspect_after has no effect with etcd: it reports lease time-to-live in whole "
                "seconds, too coarse to tell a silent member, so lost nodes wait for their lease",
                "use the embedded raft backend for fencing on suspicion, or drop suspect_after",
            )
        )
    suspecting = spec.suspect_after is not None and spec.options.fencing and spec.fence_devices
    for node in spec.nodes if suspecting else ():
        if not power_fences(spec, node.name):
            out.append(
                Finding(
                    "warning",
                    f"{node.name} is not fenced by power devices only, so it is never fenced on "
                    "suspicion: a fabric fence leaves its agent running, and it waits for its "
                    "lease",
                    f'fence {node.name} with a device of kind = "power" (IPMI, PDU, hypervisor)',
                )
            )

    modes = {spec.watchdog_spec.mode} | {"required" for n in spec.nodes if n.watchdog}
    if modes - {"off"}:
        try:
            watchdog_timeout(spec.watchdog_spec, timing)
        except ConfigError as exc:
            out.append(Finding("error", str(exc), "see docs/fencing.md, 'Watchdog timing'"))

    runner = runner or FenceAgentRunner()
    for device in spec.fence_devices:
        try:
            runner.resolve(device.agent)
        except ConfigError as exc:
            out.append(Finding("error", f"fence device {device.name}: {exc}", "install it"))
    for node in spec.nodes:
        can = [d.name for d in spec.fence_devices if device_of(d).can_fence(node.name)]
        if spec.options.fencing and spec.fence_devices and not can:
            out.append(
                Finding(
                    "warning",
                    f"no fence device can fence {node.name} (each device's host_list or hosts "
                    "leaves it out)",
                    f"add {node.name} to a device's host_list or hosts",
                )
            )
    return out
