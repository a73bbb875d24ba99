"""``host:port`` as config files and command lines write it: IPv4, a name, or ``[IPv6]``.

An IPv6 address takes brackets (``[::1]:11211``): without them its last group could be read as
the port. The port is 1-65535; a listener may also ask for 0 (any free port). Control
characters and white space are refused: an address is logged, shown and handed to other
programs. Every refusal is a ValueError (pydantic attaches the key path to it) that shows the
value and how to write it.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

# A host name (RFC 1123: at most 253 characters) or an IPv4 address; IPv6 goes in brackets.
_HOST = re.compile(r"[A-Za-z0-9_.-]{1,253}")
_PORT = re.compile(r"[0-9]{1,5}")
_EXAMPLE = "write host:port, e.g. 127.0.0.1:8080, node1:8080 or [::1]:8080"


class HostPort(NamedTuple):
    """A host (an IPv6 address without its brackets) and a port."""

    host: str
    port: int

    def __str__(self) -> str:
        """Written back as it is read: IPv6 in brackets."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def split_address(text: str, *, listen: bool = False) -> HostPort:
    """``"127.0.0.1:80"``, ``"node1:80"`` or ``"[::1]:80"`` → host and port.

    ``listen``: the address to bind, where port 0 asks the system for a free one.
    """
    if any(not c.isprintable() or c.isspace() for c in text):
        raise ValueError(f"{text!r} has a control character or a space; {_EXAMPLE}")
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r} is not host:port; {_EXAMPLE}")
    if host.startswith("[") and host.endswith("]"):
        host = _ipv6(host[1:-1], text)
    elif ":" in host:
        raise ValueError(
            f"{text!r}: an IPv6 address takes brackets, e.g. [{host}]:{port}; {_EXAMPLE}"
        )
    elif not _HOST.fullmatch(host):
        raise ValueError(f"{text!r}: {host!r} is not a host name or address; {_EXAMPLE}")
    lowest = 0 if listen else 1
    if not _PORT.fullmatch(port) or not lowest <= int(port) <= 65535:
        raise ValueError(f"{text!r}: the port must be a number from {lowest} to 65535; {_EXAMPLE}")
    return HostPort(host, int(port))


def _ipv6(inside: str, text: str) -> str:
    try:
        ipaddress.IPv6Address(inside)
    except ValueError:
        raise ValueError(
            f"{text!r}: {inside!r} in brackets is not an IPv6 address; {_EXAMPLE}"
        ) from None
    return inside
