"""Fence device settings: host maps, host lists, bad input."""

from __future__ import annotations

import pytest

from hakeeper.errors import ConfigError
from hakeeper.fencing.device import FenceDevice, parse_host_map


def test_host_map_accepts_pacemaker_syntax() -> None:
    assert parse_host_map("n1:10;n2=11 n3:12") == {"n1": "10", "n2": "11", "n3": "12"}


def test_host_map_entry_without_port_is_refused() -> None:
    with pytest.raises(ConfigError, match="node:port"):
        parse_host_map("n1:10;n2")


def test_a_mapped_node_is_fenced_by_its_port() -> None:
    device = FenceDevice("pdu", "fence_apc", host_map={"n1": "4"})
    assert device.target_of("n1") == "4"
    assert device.can_fence("n1")
    assert not device.can_fence("n2")


def test_host_list_limits_the_nodes_a_device_fences() -> None:
    device = FenceDevice("ipmi-n1", "fence_ipmilan", host_list=("n1",))
    assert device.can_fence("n1")
    assert not device.can_fence("n2")


def test_a_device_without_map_or_list_fences_any_node_by_name() -> None:
    device = FenceDevice("virsh", "fence_virsh")
    assert device.can_fence("n7")
    assert device.target_of("n7") == "n7"


def test_params_may_not_choose_the_action() -> None:
    with pytest.raises(ConfigError, match="action"):
        FenceDevice("bad", "fence_dummy", params={"action": "on"})
