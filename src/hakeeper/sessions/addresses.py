"""``host:port`` strings as the session store's options and control commands carry them."""

from __future__ import annotations


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"address {address!r} is not host:port")
    return host, int(port)
