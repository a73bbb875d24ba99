"""The network of a namespace lab: hosts, one switch, nothing in the root namespace.

Every host (``n1``…, optionally ``client``) is a network namespace with ``lo`` up and one
interface ``eth0`` holding its lab address. ``eth0``'s other end is a port of a bridge that
lives in a switch namespace of its own. Each veth pair is created *inside* the switch
namespace with its peer placed straight into the host namespace, so no interface ever
appears in the root namespace, and the root namespace has no address or route into the
lab subnet. IPv6 is disabled inside the lab (no router solicitations, no DAD noise).

Every name carries the lab's prefix (``hk<6 hex>-``), unique per lab, so two labs never
collide and teardown can sweep whatever a crashed build left behind.

Sync code (pyroute2's sync API runs its own event loop): from asyncio, call it in a thread.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from pyroute2 import IPRoute, netns

from hakeeper.agents.netns import call_in_thread
from hakeeper.errors import ConfigError
from hakeeper.lab.netns_fence import kill_all_in, namespace_id

SUBNET = ipaddress.IPv4Network("10.77.0.0/24")
CLIENT = "client"
_PREFIX = re.compile(r"^hk[0-9a-f]{6}-$")


def new_prefix() -> str:
    return f"hk{secrets.token_hex(3)}-"


@dataclass(frozen=True, slots=True)
class LabLayout:
    """Names and addresses of one lab; pure data, saved in the lab's state file."""

    prefix: str
    nodes: tuple[str, ...]
    client: bool = True
    subnet: str = str(SUBNET)
    vip_host: int = 50
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _PREFIX.match(self.prefix):
            raise ConfigError(f"lab prefix {self.prefix!r} must look like hk1a2b3c-")
        if not 1 <= len(self.nodes) <= 9:
            raise ConfigError(f"a lab has 1 to 9 nodes, not {len(self.nodes)}")

    @classmethod
    def create(cls, nodes: int, *, client: bool = True) -> LabLayout:
        return cls(new_prefix(), tuple(f"n{i}" for i in range(1, nodes + 1)), client)

    @property
    def hosts(self) -> tuple[str, ...]:
        return (*self.nodes, CLIENT) if self.client else self.nodes

    @property
    def switch_ns(self) -> str:
        return f"{self.prefix}sw"

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br"

    def host_ns(self, host: str) -> str:
        self._known(host)
        return f"{self.prefix}{host}"

    def port(self, host: str) -> str:
        """The host's switch port; also its name is at most 15 bytes (IFNAMSIZ)."""
        self._known(host)
        return f"{self.prefix}{host[:6]}"

    def address(self, host: str) -> str:
        self._known(host)
        net = ipaddress.IPv4Network(self.subnet)
        offset = 100 if host == CLIENT else 10 + self.nodes.index(host) + 1
        return str(net.network_address + offset)

    @property
    def vip(self) -> str:
        return str(ipaddress.IPv4Network(self.subnet).network_address + self.vip_host)

    @property
    def prefixlen(self) -> int:
        return ipaddress.IPv4Network(self.subnet).prefixlen

    @property
    def namespaces(self) -> tuple[str, ...]:
        return (self.switch_ns, *(self.host_ns(h) for h in self.hosts))

    def _known(self, host: str) -> None:
        if host not in self.hosts:
            raise ConfigError(f"no host {host!r} in this lab; hosts are {', '.join(self.hosts)}")

    def to_json(self) -> dict[str, object]:
        return {"prefix": self.prefix, "nodes": list(self.nodes), "client": self.client,
                "subnet": self.subnet, "vip_host": self.vip_host}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> LabLayout:
        nodes = data["nodes"]
        assert isinstance(nodes, list)
        return cls(
            prefix=str(data["prefix"]),
            nodes=tuple(str(n) for n in nodes),
            client=bool(data.get("client", True)),
            subnet=str(data.get("subnet", SUBNET)),
            vip_host=int(str(data.get("vip_host", 50))),
        )


def _sysctl(path: str, value: str) -> None:
    with open(f"/proc/sys/{path}", "w") as out:
        out.write(value)


def _quiet_host(ns: str) -> None:
    for key in ("all", "default"):
        call_in_thread(ns, _sysctl, f"net/ipv6/conf/{key}/disable_ipv6", "1")


def build(layout: LabLayout) -> None:
    """Create the namespaces, the bridge and one cabled port per host. Raises on failure;
    the caller tears down (every name it may have made is derivable from ``layout``)."""
    for ns in layout.namespaces:
        netns.create(ns)
        _quiet_host(ns)
    with IPRoute(netns=layout.switch_ns) as sw:
        sw.link("set", index=sw.link_lookup(ifname="lo")[0], state="up")
        # STP off and no forwarding delay: a port is usable the moment it is up.
        sw.link("add", ifname=layout.bridge, kind="bridge", br_stp_state=0, br_forward_delay=0)
        bridge = sw.link_lookup(ifname=layout.bridge)[0]
        sw.link("set", index=bridge, state="up")
        for host in layout.hosts:
            port = layout.port(host)
            peer = {"ifname": "eth0", "net_ns_fd": layout.host_ns(host)}
            sw.link("add", ifname=port, kind="veth", peer=peer)
            sw.link("set", index=sw.link_lookup(ifname=port)[0], master=bridge, state="up")
    for host in layout.hosts:
        with IPRoute(netns=layout.host_ns(host)) as ipr:
            for ifname in ("lo", "eth0"):
                ipr.link("set", index=ipr.link_lookup(ifname=ifname)[0], state="up")
            eth0 = ipr.link_lookup(ifname="eth0")[0]
            ipr.addr("add", index=eth0, address=layout.address(host), prefixlen=layout.prefixlen)


def existing(prefix: str) -> list[str]:
    """Namespaces on this machine whose name starts with ``prefix``."""
    if not _PREFIX.match(prefix):
        raise ConfigError(f"refusing to look for namespaces by prefix {prefix!r}")
    return sorted(ns for ns in netns.listnetns() if ns.startswith(prefix))


def teardown(layout: LabLayout) -> list[str]:
    """Kill every process inside the lab's namespaces and delete them (their veths go with
    them). Also sweeps namespaces with the lab's prefix that a crashed build left. Returns
    the namespaces removed."""
    names = sorted(set(layout.namespaces) | set(existing(layout.prefix)))
    removed = []
    for ns in names:
        if namespace_id(ns) is None:
            continue
        kill_all_in(ns)
        netns.remove(ns)
        removed.append(ns)
    return removed


def holders(layout: LabLayout, address: str) -> list[str]:
    """Nodes whose namespace holds ``address`` right now (one netlink dump per node).

    Each dump runs on a thread inside the host's namespace, not in a process forked into it
    (pyroute2's ``IPRoute(netns=...)``): a fence of that host kills every *process* of its
    namespace, and killed the checker's helper mid-test."""
    wanted = ipaddress.ip_address(address)
    return [
        node
        for node in layout.nodes
        if namespace_id(layout.host_ns(node)) is not None
        and call_in_thread(layout.host_ns(node), _holds, wanted)
    ]


def _holds(wanted: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    with IPRoute() as ipr:
        return any(
            ipaddress.ip_address(m.get("IFA_ADDRESS")) == wanted
            for m in ipr.addr("dump")
            if m.get("IFA_ADDRESS")
        )
