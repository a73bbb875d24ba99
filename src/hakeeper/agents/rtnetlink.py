"""A few rtnetlink requests, by hand, for two hot paths.

- The lab's fence device is a fresh process per fence; importing pyroute2 costs it a few
  hundred milliseconds, which the client sees as outage (link up/down, listing and deleting
  addresses).
- The ``vip`` agent's start adds its address on the event loop itself (`add_address`): a
  request and its ACK, microseconds of Python. pyroute2 needs a worker thread, where ~1 ms
  of its Python took 60 ms and more while the loop was busy, as on a node that has just
  become controller (each syscall hands the GIL back and waits for it again).

Each request is one ``NETLINK_ROUTE`` exchange that the kernel answers before ``send``
returns. Everything acts in the calling thread's network namespace (enter one with
`hakeeper.agents.netns.entered`).
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import socket
import struct

RTM_NEWLINK = 16
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
IFF_UP = 0x1
IFA_ADDRESS = 1
IFA_LOCAL = 2
SIOCGIFFLAGS = 0x8913
SIOCGIFHWADDR = 0x8927

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
_RTATTR = struct.Struct("=HH")


def _align(n: int) -> int:
    return (n + 3) & ~3


def _attr(kind: int, payload: bytes) -> bytes:
    raw = _RTATTR.pack(_RTATTR.size + len(payload), kind) + payload
    return raw + b"\0" * (_align(len(raw)) - len(raw))


def _exchange(msg_type: int, flags: int, body: bytes) -> list[tuple[int, bytes]]:
    """Send one request; its reply messages as (type, payload) until ACK or DONE."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.settimeout(5.0)
        sock.bind((0, 0))
        seq = 1
        sock.send(_HEADER.pack(_HEADER.size + len(body), msg_type, flags, seq, 0) + body)
        replies: list[tuple[int, bytes]] = []
        while True:
            data = sock.recv(65536)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, kind, _, _, _ = _HEADER.unpack_from(data, offset)
                payload = data[offset + _HEADER.size : offset + length]
                offset += _align(length)
                if kind == NLMSG_DONE:
                    return replies
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise OSError(code, os.strerror(code))
                    return replies
                replies.append((kind, payload))


def link_index(ifname: str) -> int:
    """The interface index of ``ifname``; OSError (ENODEV) when there is none."""
    try:
        return socket.if_nametoindex(ifname)
    except OSError as exc:
        raise OSError(errno.ENODEV, f"no interface {ifname} in this namespace") from exc


def set_link_up(ifname: str, up: bool) -> None:
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, link_index(ifname), IFF_UP if up else 0, IFF_UP)
    _exchange(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, body)


def link_is_up(ifname: str) -> bool:
    """Administrative state (IFF_UP) of ``ifname``; OSError when it does not exist."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", ifname.encode(), 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
    return bool(flags & IFF_UP)


def link_mac(ifname: str) -> str:
    """The hardware address of ``ifname`` (``02:00:00:00:00:01``); OSError when it does not
    exist."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16s16x", ifname.encode())
        reply = fcntl.ioctl(sock, SIOCGIFHWADDR, request)
    return ":".join(f"{b:02x}" for b in reply[18:24])  # ifr_hwaddr: family (2), then 6 bytes


def addresses(ifname: str, family: int = socket.AF_INET) -> list[tuple[str, int]]:
    """(address, prefixlen) of every address of ``family`` on ``ifname``."""
    index = link_index(ifname)
    body = _IFADDR.pack(family, 0, 0, 0, 0)
    found = []
    for kind, payload in _exchange(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, body):
        if kind != RTM_NEWADDR:
            continue
        got, prefixlen, _, _, owner = _IFADDR.unpack_from(payload)
        if got != family or owner != index:
            continue
        attrs = _attrs(payload[_IFADDR.size :])
        # IPv4 reports its own address as IFA_LOCAL (IFA_ADDRESS is the peer's on a
        # point-to-point link); IPv6 reports IFA_ADDRESS alone.
        raw = attrs.get(IFA_LOCAL, attrs.get(IFA_ADDRESS))
        if raw is not None:
            found.append((str(ipaddress.ip_address(raw)), prefixlen))
    return found


def add_address(
    ifname: str,
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    prefixlen: int,
    flags: int = 0,
) -> None:
    """Add ``address/prefixlen`` to ``ifname`` (``flags``: ``IFA_F_*``, e.g. no DAD for
    IPv6); OSError (EEXIST) when it is there already."""
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    body = _IFADDR.pack(family, prefixlen, flags, 0, link_index(ifname))
    body += _attr(IFA_LOCAL, address.packed) + _attr(IFA_ADDRESS, address.packed)
    _exchange(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, body)


def _attrs(raw: bytes) -> dict[int, bytes]:
    """The route attributes in ``raw``, by type (the first of each)."""
    found: dict[int, bytes] = {}
    offset = 0
    while offset + _RTATTR.size <= len(raw):
        length, kind = _RTATTR.unpack_from(raw, offset)
        if length < _RTATTR.size:
            break
        found.setdefault(kind, raw[offset + _RTATTR.size : offset + length])
        offset += _align(length)
    return found


def delete_ipv4(ifname: str, address: str, prefixlen: int) -> None:
    packed = ipaddress.IPv4Address(address).packed
    body = _IFADDR.pack(socket.AF_INET, prefixlen, 0, 0, link_index(ifname))
    body += _attr(IFA_LOCAL, packed) + _attr(IFA_ADDRESS, packed)
    _exchange(RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, body)
