"""The hand-made rtnetlink requests, inside a throwaway namespace (root)."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator

import pytest
from pyroute2 import IPRoute

from hakeeper.agents import rtnetlink
from hakeeper.agents.netns import entered
from tests.agents.conftest import veth_namespace

MAC = "02:00:00:00:00:07"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


@pytest.fixture
def ns() -> Iterator[str]:
    with veth_namespace("rtnl", MAC) as name:
        with IPRoute(netns=name) as ipr:
            index = ipr.link_lookup(ifname="eth0")[0]
            ipr.addr("add", index=index, address="10.77.8.1", prefixlen=24)
            ipr.addr("add", index=index, address="10.77.8.50", prefixlen=24)
        yield name


@needs_root
def test_link_goes_down_and_up(ns: str) -> None:
    with entered(ns):
        rtnetlink.set_link_up("eth0", False)
        down = rtnetlink.link_is_up("eth0")
        rtnetlink.set_link_up("eth0", True)
        up = rtnetlink.link_is_up("eth0")

    assert (down, up) == (False, True)


@needs_root
def test_addresses_are_listed_and_deleted(ns: str) -> None:
    with entered(ns):
        before = rtnetlink.addresses("eth0")
        rtnetlink.delete_ipv4("eth0", "10.77.8.50", 24)
        after = rtnetlink.addresses("eth0")

    assert sorted(before) == [("10.77.8.1", 24), ("10.77.8.50", 24)]
    assert after == [("10.77.8.1", 24)]


@needs_root
def test_an_address_is_added_once(ns: str) -> None:
    address = ipaddress.ip_address("10.77.8.100")
    with entered(ns):
        rtnetlink.add_address("eth0", address, 32)
        with pytest.raises(FileExistsError):
            rtnetlink.add_address("eth0", address, 32)
        found = rtnetlink.addresses("eth0")

    assert ("10.77.8.100", 32) in found


@needs_root
def test_an_ipv6_address_is_added_and_listed(ns: str) -> None:
    nodad = 0x02  # IFA_F_NODAD: usable at once, as the vip agent adds it
    with entered(ns):
        rtnetlink.add_address("eth0", ipaddress.ip_address("fd00:77::100"), 64, nodad)
        found = rtnetlink.addresses("eth0", socket.AF_INET6)

    assert ("fd00:77::100", 64) in found


@needs_root
def test_the_hardware_address_is_read(ns: str) -> None:
    with entered(ns):
        assert rtnetlink.link_mac("eth0") == MAC


@needs_root
def test_a_missing_link_is_an_oserror(ns: str) -> None:
    with entered(ns), pytest.raises(OSError, match="no interface nope0"):
        rtnetlink.set_link_up("nope0", False)
