"""Three rtnetlink requests, by hand, for the lab fence device's hot path.

The fence agent is a fresh process per fence; importing pyroute2 costs it a few hundred
milliseconds, which the client sees as outage. Link up/down, listing a link's IPv4
addresses and deleting one are small enough to send as raw ``NETLINK_ROUTE`` messages.
Everything acts in the calling thread's network namespace (enter one with
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
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
IFF_UP = 0x1
IFA_ADDRESS = 1
IFA_LOCAL = 2
SIOCGIFFLAGS = 0x8913

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


def ipv4_addresses(ifname: str) -> list[tuple[str, int]]:
    """(address, prefixlen) of every IPv4 address on ``ifname``."""
    index = link_index(ifname)
    body = _IFADDR.pack(socket.AF_INET, 0, 0, 0, 0)
    found = []
    for kind, payload in _exchange(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, body):
        if kind != RTM_NEWADDR:
            continue
        family, prefixlen, _, _, owner = _IFADDR.unpack_from(payload)
        if family != socket.AF_INET or owner != index:
            continue
        offset = _IFADDR.size
        while offset + _RTATTR.size <= len(payload):
            length, attr = _RTATTR.unpack_from(payload, offset)
            if length < _RTATTR.size:
                break
            if attr == IFA_LOCAL:
                raw = payload[offset + _RTATTR.size : offset + length]
                found.append((str(ipaddress.IPv4Address(raw)), prefixlen))
            offset += _align(length)
    return found


def delete_ipv4(ifname: str, address: str, prefixlen: int) -> None:
    packed = ipaddress.IPv4Address(address).packed
    body = _IFADDR.pack(socket.AF_INET, prefixlen, 0, 0, link_index(ifname))
    body += _attr(IFA_LOCAL, packed) + _attr(IFA_ADDRESS, packed)
    _exchange(RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, body)
