"""vip agent: parameters, and the real thing inside a throwaway network namespace.

Namespace tests need root; they build ``hk<hex>-vip`` holding a veth pair ``eth0``/``peer0``
and never touch the root namespace's interfaces. Announcements are captured on ``peer0``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from hakeeper.agents.base import OcfRc, OpRequest, OpResult, ResourceAgent
from hakeeper.agents.factory import AgentContext
from hakeeper.agents.netns import call_in, entered
from hakeeper.agents.registry import BUILTIN_AGENTS
from hakeeper.agents.vip import VipAgent, VipConfig, missing_capabilities
from hakeeper.agents.vip_announce import (
    ETH_P_ARP,
    ICMPV6_NA,
    garp_frame,
    open_arp_socket,
    unsolicited_na,
)
from hakeeper.errors import ConfigError
from tests.agents.conftest import veth_namespace

REQ = OpRequest(timeout=10.0, node="n1")
ETH_P_ALL = 0x0003
MAC = "02:00:00:00:00:01"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


def vip(namespace: str, ip: str = "10.77.9.100", **params: object) -> VipAgent:
    merged = {"ip": ip, "interface": "eth0", "netns": namespace, "announce_interval": "10ms"}
    merged.update({k: v for k, v in params.items()})
    return VipAgent("vip", VipConfig.from_params(merged))


@pytest.fixture
def ns() -> Iterator[str]:
    with veth_namespace("vip", MAC) as name:
        yield name


def addresses_now(namespace: str, ifname: str = "eth0") -> set[str]:
    """Sync pyroute2 runs its own event loop: never on a thread whose loop is running."""
    with IPRoute(netns=namespace) as ipr:
        index = ipr.link_lookup(ifname=ifname)[0]
        return {str(m.get("IFA_ADDRESS")) for m in ipr.addr("dump", index=index)}


async def addresses(namespace: str) -> set[str]:
    return await asyncio.to_thread(addresses_now, namespace)


def delete_address(namespace: str, address: str, prefixlen: int) -> None:
    with IPRoute(netns=namespace) as ipr:
        index = ipr.link_lookup(ifname="eth0")[0]
        ipr.addr("del", index=index, address=address, prefixlen=prefixlen)


def capture(namespace: str) -> socket.socket:
    sock = call_in(
        namespace, socket.socket, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)
    )
    sock.bind(("peer0", 0))
    sock.settimeout(0.2)
    return sock


def frames(
    sock: socket.socket, wanted: int, keep: Callable[[bytes], bool], seconds: float = 3.0
) -> list[bytes]:
    """Up to ``wanted`` captured frames that ``keep`` accepts (others, e.g. IPv6 noise, skipped)."""
    got: list[bytes] = []
    deadline = time.monotonic() + seconds
    while len(got) < wanted and time.monotonic() < deadline:
        try:
            frame = sock.recv(2048)
        except TimeoutError:
            continue
        if keep(frame):
            got.append(frame)
    return got


# -- parameters (no root) ---------------------------------------------------------------


def test_registry_builds_a_vip_agent(tmp_path: Path) -> None:
    agent = BUILTIN_AGENTS.make(
        "vip",
        AgentContext(
            instance="ip", params={"ip": "10.0.0.1", "interface": "eth0"}, state_dir=tmp_path
        ),
    )
    assert isinstance(agent, VipAgent)
    assert isinstance(agent, ResourceAgent)


def test_prefix_from_ip_or_default_host_route() -> None:
    assert VipConfig.from_params({"ip": "10.0.0.1/24", "interface": "e"}).prefixlen == 24
    assert VipConfig.from_params({"ip": "10.0.0.1", "interface": "e"}).prefixlen == 32
    assert VipConfig.from_params({"ip": "fd00::1", "interface": "e"}).prefixlen == 128


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"interface": "eth0"}, "needs parameter 'ip'"),
        ({"ip": "10.0.0.1"}, "needs parameter 'interface'"),
        ({"ip": "10.0.0.300", "interface": "eth0"}, "not an IPv4/IPv6 address"),
        ({"ip": "10.0.0.1", "interface": "eth0", "prefixlen": 40}, "out of 1..32"),
        ({"ip": "10.0.0.1", "interface": "eth0", "colour": "red"}, "no parameter"),
        ({"ip": "10.0.0.1", "interface": "eth0", "announce_count": "x"}, "whole number"),
        ({"ip": "10.0.0.1", "interface": "eth0", "netns": "../x"}, "under /run/netns"),
    ],
)
def test_bad_parameters_are_config_errors(params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        VipConfig.from_params(params)


def test_missing_capabilities_read_from_capeff() -> None:
    assert missing_capabilities("CapEff:\t000001ffffffffff\n") == []
    assert missing_capabilities("CapEff:\t0000000000000000\n") == ["CAP_NET_ADMIN", "CAP_NET_RAW"]
    assert missing_capabilities(f"CapEff:\t{1 << 13:016x}\n") == ["CAP_NET_ADMIN"]


def test_garp_frame_is_a_broadcast_arp_request_for_itself() -> None:
    frame = garp_frame(ipaddress.IPv4Address("10.1.2.3"), MAC)
    assert frame[:6] == b"\xff" * 6
    assert frame[12:14] == b"\x08\x06"
    assert frame[20:22] == b"\x00\x01"  # request
    assert frame[28:32] == frame[38:42] == bytes([10, 1, 2, 3])


def test_na_carries_override_flag_and_link_address() -> None:
    packet = unsolicited_na(ipaddress.IPv6Address("fd00::1"), MAC)
    assert packet[0] == ICMPV6_NA
    assert packet[4] & 0x20
    assert packet[-6:] == bytes.fromhex("020000000001")


# -- in a namespace (root) --------------------------------------------------------------


@needs_root
async def test_start_adds_the_address_and_monitor_sees_it(ns: str) -> None:
    agent = vip(ns)
    assert (await agent.monitor(REQ, probe=True)).rc == OcfRc.NOT_RUNNING

    started = await agent.start(REQ)

    assert started.rc == OcfRc.SUCCESS, started.describe()
    assert "10.77.9.100" in await addresses(ns)
    assert (await agent.monitor(REQ)).rc == OcfRc.SUCCESS


def started_here(namespace: str, **params: object) -> OpResult:
    """Start a vip agent with no ``netns`` parameter on a loop whose thread is inside
    ``namespace``: as the agent of a node runs it, in its own namespace."""
    merged: dict[str, object] = {"ip": "10.77.9.100", "interface": "eth0"}
    merged.update(params)
    agent = VipAgent("vip", VipConfig.from_params(merged))
    with entered(namespace):
        return asyncio.run(agent.start(REQ))


@needs_root
async def test_start_in_the_agents_own_namespace_adds_the_address_and_announces_it(
    ns: str,
) -> None:
    sock = capture(ns)
    try:
        started = await asyncio.to_thread(started_here, ns, announce_count=2)
        got = frames(sock, 3, lambda f: f[12:14] == ETH_P_ARP.to_bytes(2, "big"), seconds=1.5)
    finally:
        sock.close()

    assert started.rc == OcfRc.SUCCESS, started.describe()
    assert "10.77.9.100" in await addresses(ns)
    assert len(got) == 2
    assert all(f[6:12] == bytes.fromhex("020000000001") for f in got)


@needs_root
async def test_start_in_the_agents_own_namespace_adds_the_address_without_a_worker_thread(
    ns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The loop adds and announces the address itself: a worker thread waits for the GIL
    # behind a busy loop (60 ms and more for pyroute2 on a node just become controller).
    def no_thread(*args: object, **kwargs: object) -> object:
        raise AssertionError("a worker thread was used on the address's path")

    monkeypatch.setattr("hakeeper.agents.vip.run_in", no_thread)
    started = await asyncio.to_thread(started_here, ns, announce_count=1)
    assert started.rc == OcfRc.SUCCESS, started.describe()


@needs_root
async def test_start_in_the_agents_own_namespace_keeps_an_address_already_there(
    ns: str,
) -> None:
    assert (await asyncio.to_thread(started_here, ns, announce_count=0)).rc == OcfRc.SUCCESS
    again = await asyncio.to_thread(started_here, ns, announce_count=0)
    assert again.rc == OcfRc.SUCCESS
    assert "10.77.9.100" in await addresses(ns)


@needs_root
async def test_start_in_the_agents_own_namespace_on_a_missing_interface_is_not_installed(
    ns: str,
) -> None:
    started = await asyncio.to_thread(started_here, ns, interface="nope0")
    assert started.rc == OcfRc.ERR_INSTALLED


@needs_root
async def test_stop_removes_the_address_and_is_idempotent(ns: str) -> None:
    agent = vip(ns)
    await agent.start(REQ)

    assert (await agent.stop(REQ)).rc == OcfRc.SUCCESS
    assert (await agent.stop(REQ)).rc == OcfRc.SUCCESS
    assert "10.77.9.100" not in await addresses(ns)
    assert (await agent.monitor(REQ)).rc == OcfRc.NOT_RUNNING


@needs_root
async def test_start_twice_is_success(ns: str) -> None:
    agent = vip(ns)
    assert (await agent.start(REQ)).ok
    assert (await agent.start(REQ)).rc == OcfRc.SUCCESS


@needs_root
async def test_monitor_notices_an_address_removed_behind_its_back(ns: str) -> None:
    agent = vip(ns)
    await agent.start(REQ)
    await asyncio.to_thread(delete_address, ns, "10.77.9.100", 32)

    assert (await agent.monitor(REQ)).rc == OcfRc.NOT_RUNNING


@needs_root
async def test_ipv4_start_sends_gratuitous_arp_count_times(ns: str) -> None:
    sock = capture(ns)
    try:
        await vip(ns, announce_count=4).start(REQ)
        got = frames(sock, 5, lambda f: f[12:14] == ETH_P_ARP.to_bytes(2, "big"), seconds=1.5)
    finally:
        sock.close()

    assert len(got) == 4
    assert all(f[6:12] == bytes.fromhex("020000000001") for f in got)
    assert all(f[28:32] == f[38:42] == bytes([10, 77, 9, 100]) for f in got)


@needs_root
def test_arp_socket_only_sends_so_its_bind_waits_for_no_grace_period(ns: str) -> None:
    # A packet socket with a protocol receives: its bind() waits for an RCU grace period
    # (10-30 ms measured) before the first announcement can leave.
    sock = call_in(ns, open_arp_socket, "eth0")
    try:
        assert sock.proto == 0
    finally:
        sock.close()


@needs_root
async def test_ipv6_start_sends_unsolicited_neighbour_advertisements(ns: str) -> None:
    sock = capture(ns)
    try:
        result = await vip(ns, ip="fd00:77::100/64", announce_count=2).start(REQ)
        # IPv6 header (40 bytes) after Ethernet (14); next header 58 = ICMPv6.
        na = frames(
            sock,
            3,
            lambda f: f[12:14] == b"\x86\xdd" and f[20] == 58 and f[54] == ICMPV6_NA,
            seconds=1.5,
        )
    finally:
        sock.close()

    assert result.rc == OcfRc.SUCCESS, result.describe()
    assert "fd00:77::100" in await addresses(ns)
    assert len(na) == 2
    assert all(f[62:78] == ipaddress.IPv6Address("fd00:77::100").packed for f in na)
    assert all(f[21] == 255 for f in na)  # hop limit, or receivers drop it


@needs_root
async def test_missing_interface_is_not_installed_on_start_and_stopped_on_probe(ns: str) -> None:
    agent = VipAgent(
        "vip", VipConfig.from_params({"ip": "10.77.9.1", "interface": "nope0", "netns": ns})
    )

    assert (await agent.monitor(REQ, probe=True)).rc == OcfRc.NOT_RUNNING
    result = await agent.start(REQ)
    assert result.rc == OcfRc.ERR_INSTALLED
    assert "nope0 does not exist" in result.exit_reason


@needs_root
async def test_missing_namespace_is_a_configuration_error() -> None:
    agent = vip("hk-no-such-namespace")
    result = await agent.start(REQ)
    assert result.rc == OcfRc.ERR_CONFIGURED
    assert "does not exist" in result.exit_reason


@needs_root
def test_without_cap_net_admin_start_is_err_perm_and_says_why(ns: str) -> None:
    code = (
        "import asyncio; from hakeeper.agents.base import OpRequest;"
        "from hakeeper.agents.vip import VipAgent, VipConfig;"
        "a = VipAgent('vip', VipConfig.from_params({'ip': '10.77.9.5', 'interface': 'eth0'}));"
        "r = asyncio.run(a.start(OpRequest(timeout=5))); print(r.rc, r.exit_reason)"
    )
    drop = "-net_admin,-net_raw"
    argv = ["ip", "netns", "exec", ns, "setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}"]
    done = subprocess.run(
        [*argv, sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )

    assert done.stdout.startswith(f"{int(OcfRc.ERR_PERM)} "), done.stdout + done.stderr
    assert "CAP_NET_ADMIN" in done.stdout
    assert "10.77.9.5" not in addresses_now(ns)
