"""The meta attributes and environment an OCF agent of a clone gets, as Pacemaker's."""

from __future__ import annotations

from pathlib import Path

from hakeeper.agents.base import OpRequest
from hakeeper.agents.ocf import build_ocf_env
from hakeeper.runtime.crm_tools.meta import CRM_FEATURE_SET, resource_meta
from tests.runtime.crm_tools.test_service import SPEC


def test_a_promotable_clone_s_primitive_gets_pacemaker_s_clone_meta() -> None:
    meta = resource_meta(SPEC, "pgsqld")
    assert {k: meta[k] for k in ("clone-max", "clone-node-max", "notify", "master-max")} == {
        "clone-max": "2",
        "clone-node-max": "1",
        "notify": "true",
        "master-max": "1",
    }
    assert meta["promoted-node-max"] == "1"


def test_the_agent_environment_carries_the_tools_and_the_feature_set() -> None:
    env = build_ocf_env(
        ocf_root=Path("/usr/lib/ocf"), provider="heartbeat", type_="pgsqlms",
        instance="pgsqld", params={}, meta=resource_meta(SPEC, "pgsqld"), action="notify",
        req=OpRequest(timeout=5), base={"PATH": "/usr/bin", "OCF_RESKEY_evil": "1"},
        cluster={"HA_SBIN_DIR": "/s/crm-tools", "OCF_RESKEY_crm_feature_set": CRM_FEATURE_SET},
    )  # fmt: skip
    assert env["HA_SBIN_DIR"] == "/s/crm-tools"
    assert env["OCF_RESKEY_crm_feature_set"] == CRM_FEATURE_SET
    assert env["OCF_RESKEY_CRM_meta_master_max"] == "1"
    assert env["OCF_RESKEY_CRM_meta_notify"] == "true"
    assert "OCF_RESKEY_evil" not in env
