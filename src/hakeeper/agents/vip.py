"""``vip``: a virtual IP address (IPv4 or IPv6) on one interface of this node.

start adds the address over netlink (pyroute2; no ``ip`` subprocess) and announces it
``announce_count`` times, ``announce_interval`` apart (gratuitous ARP for IPv4, unsolicited
neighbour advertisement for IPv6; `vip_announce`); stop removes it; monitor answers
SUCCESS while the address is on the interface, NOT_RUNNING otherwise. Exclusive by default
(the scheduler's ``exclusive`` meta), as an address must never be held by two nodes.

Adding an address needs CAP_NET_ADMIN, announcing it CAP_NET_RAW: without them start
answers ERR_PERM (hard: the resource moves away from this node) and says so. An interface
that does not exist answers ERR_INSTALLED on start, NOT_RUNNING on monitor.

Parameters: ``ip`` (``10.0.0.100``, ``10.0.0.100/24``, ``fd00::100/64``), ``interface``,
``prefixlen`` (default 32 / 128, or the ``/N`` of ``ip``), ``announce_count`` (default 3),
``announce_interval`` (default 100ms), ``netns`` (manage the address inside the named
namespace under /run/netns instead of the agent's own; for labs and tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from hakeeper.agents import rtnetlink
from hakeeper.agents.base import (
    MetaData,
    OcfRc,
    OpRequest,
    OpResult,
    ParamSpec,
    log_op,
    make_result,
    unimplemented,
)
from hakeeper.agents.factory import AgentContext
from hakeeper.agents.metadata import check_params
from hakeeper.agents.netns import run_in
from hakeeper.agents.vip_announce import Announcer
from hakeeper.errors import ConfigError
from hakeeper.model.durations import parse_duration

IFA_F_NODAD = 0x02
CAP_NET_ADMIN = 12
CAP_NET_RAW = 13

PARAMS = (
    ParamSpec("ip", required=True, unique=True, shortdesc="the address, optionally /prefixlen"),
    ParamSpec("interface", required=True, shortdesc="interface to put it on (e.g. eth0)"),
    ParamSpec("prefixlen", type="integer", shortdesc="default 32 (IPv4) / 128 (IPv6)"),
    ParamSpec("announce_count", type="integer", default="3", shortdesc="GARP/NA repeats"),
    ParamSpec("announce_interval", type="duration", default="100ms", shortdesc="between them"),
    ParamSpec("netns", shortdesc="network namespace (under /run/netns) holding the interface"),
)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class VipConfig:
    """The validated parameters of one ``vip`` resource."""

    address: Address
    prefixlen: int
    interface: str
    announce_count: int = 3
    announce_interval: float = 0.1
    netns: str | None = None

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefixlen}"

    @classmethod
    def from_params(cls, params: Mapping[str, object]) -> VipConfig:
        check_params("vip agent", params, PARAMS)
        for name, example in (("ip", "ip = '10.0.0.100/24'"), ("interface", "interface = 'eth0'")):
            if not isinstance(params.get(name), str) or not params[name]:
                raise ConfigError(f"vip agent needs parameter {name!r} (e.g. {example})")
        try:
            iface = ipaddress.ip_interface(str(params["ip"]))
        except ValueError as exc:
            raise ConfigError(
                f"vip parameter ip: {params['ip']!r} is not an IPv4/IPv6 address "
                "(write 10.0.0.100 or 10.0.0.100/24)"
            ) from exc
        default_len = iface.network.prefixlen if "/" in str(params["ip"]) else iface.max_prefixlen
        prefixlen = _integer(params, "prefixlen", default_len)
        if not 1 <= prefixlen <= iface.max_prefixlen:
            raise ConfigError(
                f"vip parameter prefixlen: {prefixlen} is out of 1..{iface.max_prefixlen}"
            )
        interface = str(params["interface"])
        if len(interface) > 15 or "/" in interface or " " in interface:
            raise ConfigError(f"vip parameter interface: {interface!r} is not an interface name")
        count = _integer(params, "announce_count", 3)
        if not 0 <= count <= 100:
            raise ConfigError(f"vip parameter announce_count: {count} is out of 0..100")
        interval = params.get("announce_interval", "100ms")
        if not isinstance(interval, str | int | float):
            raise ConfigError("vip parameter announce_interval: give a duration like '100ms'")
        netns = params.get("netns")
        if netns is not None and (not isinstance(netns, str) or "/" in netns or not netns):
            raise ConfigError(
                f"vip parameter netns: {netns!r} must name a namespace under /run/netns"
            )
        return cls(
            address=iface.ip,
            prefixlen=prefixlen,
            interface=interface,
            announce_count=count,
            announce_interval=parse_duration(interval, what="vip parameter announce_interval"),
            netns=str(netns) if netns else None,
        )


def _integer(params: Mapping[str, object], name: str, default: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"vip parameter {name}: give a whole number")
    try:
        return int(value)
    except ValueError as exc:
        raise ConfigError(f"vip parameter {name}: {value!r} is not a whole number") from exc


def missing_capabilities(status: str | None = None) -> list[str]:
    """The capabilities among CAP_NET_ADMIN/CAP_NET_RAW this process lacks (``CapEff``)."""
    text = status if status is not None else Path("/proc/self/status").read_text()
    effective = 0
    for line in text.splitlines():
        if line.startswith("CapEff:"):
            effective = int(line.split()[1], 16)
    wanted = {"CAP_NET_ADMIN": CAP_NET_ADMIN, "CAP_NET_RAW": CAP_NET_RAW}
    return [name for name, bit in wanted.items() if not effective >> bit & 1]


@dataclass(frozen=True, slots=True)
class Link:
    index: int
    mac: str


def _link(ipr: IPRoute, ifname: str) -> Link | None:
    # One request by name, not a lookup (which lists every link) and then a get: the pair
    # took 1.5-5.5 ms in the lab's failovers, on the path to the address going up.
    try:
        msg = ipr.link("get", ifname=ifname)[0]
    except NetlinkError as exc:
        if exc.code == errno.ENODEV:
            return None
        raise
    return Link(index=int(msg["index"]), mac=str(msg.get("IFLA_ADDRESS") or "00:00:00:00:00:00"))


def _has(ipr: IPRoute, cfg: VipConfig, link: Link) -> bool:
    return any(
        ipaddress.ip_address(msg.get("IFA_ADDRESS")) == cfg.address
        for msg in ipr.addr("dump", index=link.index)
        if msg.get("IFA_ADDRESS")
    )


def find(cfg: VipConfig) -> tuple[Link | None, bool]:
    """(the interface, whether it holds the address) — in the calling thread's namespace."""
    with IPRoute() as ipr:
        link = _link(ipr, cfg.interface)
        return link, link is not None and _has(ipr, cfg, link)


def add(cfg: VipConfig) -> Link | None:
    """Add the address (idempotent); the interface, or None when it does not exist."""
    with IPRoute() as ipr:
        link = _link(ipr, cfg.interface)
        if link is None:
            return None
        if _has(ipr, cfg, link):
            return link
        extra = {"flags": IFA_F_NODAD} if cfg.address.version == 6 else {}
        try:
            ipr.addr(
                "add", index=link.index, address=str(cfg.address), prefixlen=cfg.prefixlen, **extra
            )
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise
        return link


def add_here(cfg: VipConfig) -> Link | None:
    """`add`, in the calling thread's namespace, by hand-made rtnetlink requests: tens of
    microseconds of Python, so the event loop runs it itself. OSError as the kernel answers
    (EPERM without CAP_NET_ADMIN)."""
    family = socket.AF_INET if cfg.address.version == 4 else socket.AF_INET6
    try:
        present = rtnetlink.addresses(cfg.interface, family)
    except OSError as exc:
        if exc.errno == errno.ENODEV:
            return None
        raise
    if all(ipaddress.ip_address(found) != cfg.address for found, _ in present):
        flags = IFA_F_NODAD if cfg.address.version == 6 else 0
        with contextlib.suppress(FileExistsError):  # added meanwhile: as wanted
            rtnetlink.add_address(cfg.interface, cfg.address, cfg.prefixlen, flags)
    return Link(index=rtnetlink.link_index(cfg.interface), mac=rtnetlink.link_mac(cfg.interface))


async def _add(cfg: VipConfig) -> Link | None:
    """Add the address where the agent's config says. In the agent's own namespace on the
    loop thread (`add_here`), without a single wait: on a worker thread pyroute2's ~1 ms of
    Python took 60 ms and more while the loop was busy, as on a node that has just become
    controller, and the address is on the failover's path. Another namespace needs a thread
    of its own (setns)."""
    if cfg.netns is not None:
        return await run_in(cfg.netns, add, cfg)
    try:
        return add_here(cfg)
    except OSError as exc:
        # One error type for both ways, as `start` reads it.
        raise NetlinkError(exc.errno or errno.EIO, str(exc)) from exc


def remove(cfg: VipConfig) -> bool:
    """Remove the address; whether it was there."""
    with IPRoute() as ipr:
        link = _link(ipr, cfg.interface)
        if link is None or not _has(ipr, cfg, link):
            return False
        try:
            ipr.addr("del", index=link.index, address=str(cfg.address), prefixlen=cfg.prefixlen)
        except NetlinkError as exc:
            if exc.code != errno.EADDRNOTAVAIL:
                raise
            return False
        return True


async def _announce(cfg: VipConfig, link: Link) -> None:
    """``announce_count`` announcements, the first at once, from one socket (`Announcer`)."""
    if cfg.announce_count == 0:
        return
    if cfg.netns is None:
        # On the loop, as `_add`: a socket and one packet, no wait before the first.
        announcer = Announcer(cfg.address, cfg.interface, link.index, link.mac)
    else:
        announcer = await run_in(
            cfg.netns, Announcer, cfg.address, cfg.interface, link.index, link.mac
        )
    try:
        for i in range(cfg.announce_count):
            if i:
                await asyncio.sleep(cfg.announce_interval)
            announcer.send()  # one packet: microseconds
    finally:
        await asyncio.to_thread(announcer.close)


def _perm_reason(what: str, cfg: VipConfig) -> str:
    return (
        f"{what} {cfg.cidr} on {cfg.interface} needs CAP_NET_ADMIN and CAP_NET_RAW: run the "
        "hakeeper agent as root, or grant them (e.g. AmbientCapabilities=CAP_NET_ADMIN "
        "CAP_NET_RAW in its systemd unit)"
    )


class VipAgent:
    """One virtual address on this node."""

    def __init__(self, instance: str, config: VipConfig) -> None:
        self.instance = instance
        self.config = config

    @classmethod
    def from_spec(cls, target: str, context: AgentContext) -> VipAgent:
        return cls(context.instance, VipConfig.from_params(context.params))

    def meta_data(self) -> MetaData:
        return MetaData(name="vip", shortdesc="A virtual IP address", parameters=PARAMS)

    def _result(
        self, op: str, rc: int, started: float, req: OpRequest, reason: str = ""
    ) -> OpResult:
        result = make_result(
            op,
            rc,
            started=started,
            resource=self.instance,
            interval=req.interval,
            exit_reason=reason,
        )
        return log_op(result, node=req.node, epoch=req.epoch)

    async def start(self, req: OpRequest) -> OpResult:
        started = time.monotonic()
        cfg = self.config
        missing = missing_capabilities()
        if missing:
            return self._result("start", OcfRc.ERR_PERM, started, req, _perm_reason("adding", cfg))
        try:
            async with asyncio.timeout(req.timeout):
                link = await _add(cfg)
                if link is None:
                    reason = (
                        f"interface {cfg.interface} does not exist on this node; "
                        "fix params.interface"
                    )
                    return self._result("start", OcfRc.ERR_INSTALLED, started, req, reason)
                await _announce(cfg, link)
        except TimeoutError:
            result = make_result(
                "start", OcfRc.ERR_GENERIC, started=started, resource=self.instance, timed_out=True
            )
            return log_op(result, node=req.node, epoch=req.epoch)
        except ConfigError as exc:
            return self._result("start", OcfRc.ERR_CONFIGURED, started, req, str(exc))
        except PermissionError:
            return self._result(
                "start", OcfRc.ERR_PERM, started, req, _perm_reason("announcing", cfg)
            )
        except NetlinkError as exc:
            if exc.code == errno.EPERM:
                return self._result(
                    "start", OcfRc.ERR_PERM, started, req, _perm_reason("adding", cfg)
                )
            return self._result(
                "start", OcfRc.ERR_GENERIC, started, req, f"adding {cfg.cidr}: {exc}"
            )
        except (OSError, ValueError) as exc:
            return self._result(
                "start", OcfRc.ERR_GENERIC, started, req, f"announcing {cfg.cidr}: {exc}"
            )
        return self._result("start", OcfRc.SUCCESS, started, req)

    async def stop(self, req: OpRequest) -> OpResult:
        started = time.monotonic()
        cfg = self.config
        try:
            async with asyncio.timeout(req.timeout):
                await run_in(cfg.netns, remove, cfg)
        except TimeoutError:
            result = make_result(
                "stop", OcfRc.ERR_GENERIC, started=started, resource=self.instance, timed_out=True
            )
            return log_op(result, node=req.node, epoch=req.epoch)
        except ConfigError as exc:
            return self._result("stop", OcfRc.ERR_CONFIGURED, started, req, str(exc))
        except NetlinkError as exc:
            rc = OcfRc.ERR_PERM if exc.code == errno.EPERM else OcfRc.ERR_GENERIC
            reason = (
                _perm_reason("removing", cfg)
                if rc == OcfRc.ERR_PERM
                else f"removing {cfg.cidr}: {exc}"
            )
            return self._result("stop", rc, started, req, reason)
        except (OSError, ValueError) as exc:
            return self._result(
                "stop", OcfRc.ERR_GENERIC, started, req, f"removing {cfg.cidr}: {exc}"
            )
        return self._result("stop", OcfRc.SUCCESS, started, req)

    async def monitor(self, req: OpRequest, *, probe: bool = False) -> OpResult:
        op = "probe" if probe else "monitor"
        started = time.monotonic()
        cfg = self.config
        try:
            async with asyncio.timeout(req.timeout):
                link, present = await run_in(cfg.netns, find, cfg)
        except TimeoutError:
            result = make_result(
                op,
                OcfRc.ERR_GENERIC,
                started=started,
                resource=self.instance,
                interval=req.interval,
                timed_out=True,
            )
            return log_op(result, node=req.node, epoch=req.epoch)
        except ConfigError as exc:
            return self._result(op, OcfRc.ERR_CONFIGURED, started, req, str(exc))
        except (NetlinkError, OSError, ValueError) as exc:
            return self._result(
                op, OcfRc.ERR_GENERIC, started, req, f"reading addresses of {cfg.interface}: {exc}"
            )
        if link is None:
            return self._result(
                op, OcfRc.NOT_RUNNING, started, req, f"interface {cfg.interface} does not exist"
            )
        if not present:
            return self._result(
                op, OcfRc.NOT_RUNNING, started, req, f"{cfg.address} is not on {cfg.interface}"
            )
        return self._result(op, OcfRc.SUCCESS, started, req)

    async def promote(self, req: OpRequest) -> OpResult:
        return unimplemented("promote", self.instance, "a vip has no promoted role")

    async def demote(self, req: OpRequest) -> OpResult:
        return unimplemented("demote", self.instance, "a vip has no promoted role")
