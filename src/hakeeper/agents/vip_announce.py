"""Telling a LAN that an address moved: gratuitous ARP (IPv4), unsolicited NA (IPv6).

Both are built here byte by byte and sent from raw sockets (CAP_NET_RAW), the way
keepalived does it: an ARP *request* whose sender and target are the moved address, to
the Ethernet broadcast address; and an ICMPv6 neighbour advertisement with the override
flag and the target link-layer address option, to all-nodes (ff02::1) with hop limit 255
(RFC 4861 7.2.6). Neighbours that already have an entry for the address update it.
"""

from __future__ import annotations

import ipaddress
import socket
import struct

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
BROADCAST = b"\xff" * 6
ALL_NODES = "ff02::1"
ICMPV6_NA = 136
NA_OVERRIDE = 0x20000000
OPT_TARGET_LLADDR = 2


def mac_bytes(mac: str) -> bytes:
    raw = bytes.fromhex(mac.replace(":", ""))
    if len(raw) != 6:
        raise ValueError(f"{mac!r} is not an Ethernet address")
    return raw


def garp_frame(address: ipaddress.IPv4Address, mac: str) -> bytes:
    """Ethernet broadcast frame holding an ARP request for ``address`` from ``address``."""
    own = mac_bytes(mac)
    ip = address.packed
    header = BROADCAST + own + struct.pack("!H", ETH_P_ARP)
    # htype Ethernet, ptype IPv4, hlen 6, plen 4, op 1 (request); target MAC unknown (zeros).
    arp = struct.pack("!HHBBH", 1, ETH_P_IP, 6, 4, 1) + own + ip + b"\x00" * 6 + ip
    return header + arp


def unsolicited_na(address: ipaddress.IPv6Address, mac: str) -> bytes:
    """ICMPv6 neighbour advertisement for ``address``; the kernel fills in the checksum."""
    option = struct.pack("!BB", OPT_TARGET_LLADDR, 1) + mac_bytes(mac)
    return struct.pack("!BBHI", ICMPV6_NA, 0, 0, NA_OVERRIDE) + address.packed + option


def open_arp_socket(ifname: str) -> socket.socket:
    """A raw packet socket on ``ifname`` that only sends (PermissionError without CAP_NET_RAW).

    Protocol 0: the socket receives nothing. Bound with a protocol, it would hold a receive
    hook that bind() moves to the interface only after an RCU grace period (the kernel's
    ``synchronize_net()``): 10-30 ms measured here before the first frame could leave."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        sock.bind((ifname, 0))
    except OSError:
        sock.close()
        raise
    return sock


def open_na_socket(address: ipaddress.IPv6Address, ifindex: int) -> socket.socket:
    """A raw ICMPv6 socket sending from ``address`` out of interface ``ifindex``."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
        sock.bind((str(address), 0, 0, ifindex))
    except OSError:
        sock.close()
        raise
    return sock


class Announcer:
    """Announcements of one address on one interface, all from one socket.

    Opened once per start and closed after the last announcement: closing a packet socket
    also waits for an RCU grace period, which must not sit between the address going up
    and the first announcement, nor between two of them. The socket belongs to the network
    namespace of the thread that opened it, wherever `send` runs later."""

    def __init__(
        self,
        address: ipaddress.IPv4Address | ipaddress.IPv6Address,
        ifname: str,
        ifindex: int,
        mac: str,
    ) -> None:
        self._ipv6 = isinstance(address, ipaddress.IPv6Address)
        if isinstance(address, ipaddress.IPv4Address):
            self._sock = open_arp_socket(ifname)
            self._frame = garp_frame(address, mac)
        else:
            self._sock = open_na_socket(address, ifindex)
            self._frame = unsolicited_na(address, mac)
        self._ifindex = ifindex

    def send(self) -> None:
        """One announcement (blocking, a few microseconds)."""
        if self._ipv6:
            self._sock.sendto(self._frame, (ALL_NODES, 0, 0, self._ifindex))
        else:
            self._sock.send(self._frame)

    def close(self) -> None:
        """Blocks for the kernel's grace period (milliseconds): call it off the event loop."""
        self._sock.close()
