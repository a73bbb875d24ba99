"""The fence device's hand-made rtnetlink requests, inside a throwaway namespace (root)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pyroute2 import IPRoute

from hakeeper.agents.netns import entered
from hakeeper.lab import rtnetlink
from tests.lab.conftest import throwaway_namespace


@pytest.fixture
def ns() -> Iterator[str]:
    with throwaway_namespace("rtnl") as name:
        with IPRoute(netns=name) as ipr:
            ipr.link("add", ifname="eth0", kind="veth", peer={"ifname": "peer0"})
            index = ipr.link_lookup(ifname="eth0")[0]
            ipr.link("set", index=index, state="up")
            ipr.addr("add", index=index, address="10.77.8.1", prefixlen=24)
            ipr.addr("add", index=index, address="10.77.8.50", prefixlen=24)
        yield name


def test_link_goes_down_and_up(ns: str) -> None:
    with entered(ns):
        rtnetlink.set_link_up("eth0", False)
        down = rtnetlink.link_is_up("eth0")
        rtnetlink.set_link_up("eth0", True)
        up = rtnetlink.link_is_up("eth0")

    assert (down, up) == (False, True)


def test_addresses_are_listed_and_deleted(ns: str) -> None:
    with entered(ns):
        before = rtnetlink.ipv4_addresses("eth0")
        rtnetlink.delete_ipv4("eth0", "10.77.8.50", 24)
        after = rtnetlink.ipv4_addresses("eth0")

    assert sorted(before) == [("10.77.8.1", 24), ("10.77.8.50", 24)]
    assert after == [("10.77.8.1", 24)]


def test_a_missing_link_is_an_oserror(ns: str) -> None:
    with entered(ns), pytest.raises(OSError, match="no interface nope0"):
        rtnetlink.set_link_up("nope0", False)
