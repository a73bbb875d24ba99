"""resource-agents' ``ocf-tester`` passes against the OCF agents hakeeper drives, with
hakeeper's Pacemaker tools (`hakeeper.runtime.crm_tools`) as their ``HA_SBIN_DIR`` and first
on ``PATH``, as hakeeper's executor runs them.

hakeeper ships no OCF agent of its own (no ``resource.d`` script: its built-in agents are
Python classes), so the agents checked are Debian's that its tests and examples run:
``ocf:heartbeat:Dummy``, and both Stateful agents, which call ``crm_attribute --promotion``
through every promote, demote and stop ocf-tester drives. ``ocf:pacemaker:Stateful`` fails
one check on any host, its own meta-data's missing DOCTYPE: the test pins that this is the
only failure. The tools are real executables
on a real socket; the store under them is a fake that records what was set.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from hakeeper.agents.runner import kill_group
from hakeeper.config.loader import spec_from_text
from hakeeper.model.attributes import NodeAttribute
from hakeeper.runtime.crm_tools.meta import CRM_FEATURE_SET
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.store import ClusterStore
from tests.agents.conftest import REAL_OCF_ROOT, require_ocf_agent
from tests.conftest import require_binary, require_file
from tests.fakes import LocalCoordinator
from tests.runtime.crm_tools.conftest import served_tools

OCF_TESTER = Path("/usr/sbin/ocf-tester")
SPEC = spec_from_text('[cluster]\nname = "t"\n[nodes.n1]\n', "test")
#: ocf-tester runs some 30 actions, each a shell agent (and for Stateful a tool call): on a
#: loaded two-core machine that can take a while, but never this long.
DEADLINE = 180.0


class RecordingStore(ClusterStore):
    """The store, remembering every attribute a tool set (proof the agent reached it)."""

    def __init__(self) -> None:
        super().__init__(LocalCoordinator(), KeySpace("t"))
        self.set: list[NodeAttribute] = []

    async def set_attribute(self, attr: NodeAttribute) -> None:
        self.set.append(attr)
        await super().set_attribute(attr)


async def ocf_tester(agent: Path, params: dict[str, str], store: ClusterStore) -> tuple[int, str]:
    """ocf-tester's exit code and output for ``agent`` (instance ``t1``) with the node's tools."""
    require_file(OCF_TESTER)
    require_binary("xmllint")  # ocf-tester validates the agent's meta-data with it
    async with served_tools(SPEC, store, "n1") as tools:
        env = {
            **os.environ,
            "HA_SBIN_DIR": str(tools),
            "PATH": f"{tools}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "OCF_RESKEY_crm_feature_set": CRM_FEATURE_SET,
            "OCF_ROOT": str(REAL_OCF_ROOT),
        }
        # ocf-tester takes no "--": the agent is an absolute path of Debian's, never an option.
        argv = [str(OCF_TESTER), "-n", "t1"]
        for name, value in params.items():
            argv += ["-o", f"{name}={value}"]
        proc = await asyncio.create_subprocess_exec(
            *argv, str(agent), env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            async with asyncio.timeout(DEADLINE):
                out, _ = await proc.communicate()
        finally:
            if proc.returncode is None:
                kill_group(proc.pid)
                await proc.wait()
    return proc.returncode or 0, out.decode(errors="replace")


async def test_ocf_tester_passes_heartbeat_dummy(tmp_path: Path) -> None:
    require_ocf_agent("heartbeat", "Dummy")
    agent = REAL_OCF_ROOT / "resource.d" / "heartbeat" / "Dummy"
    rc, out = await ocf_tester(agent, {"state": str(tmp_path / "dummy.state")}, RecordingStore())
    assert rc == 0, out
    assert f"{agent} passed all tests" in out


async def test_ocf_tester_fails_pacemaker_stateful_only_on_its_own_meta_data_dtd(
    tmp_path: Path,
) -> None:
    """Pacemaker 2.1's Stateful prints OCF 1.1 meta-data without a DOCTYPE, which
    ocf-tester's ``xmllint --valid`` refuses on any host, hakeeper or not: that one check is
    the agent's. Every action check passes, and its scores reached the cluster."""
    require_ocf_agent("pacemaker", "Stateful")
    agent = REAL_OCF_ROOT / "resource.d" / "pacemaker" / "Stateful"
    store = RecordingStore()
    rc, out = await ocf_tester(agent, {"state": str(tmp_path / "st.state")}, store)
    assert rc == 1, out
    failures = [line for line in out.splitlines() if line.startswith("* rc=")]
    assert failures == [
        "* rc=4: Your agent produces meta-data which does not conform to ra-api-1.dtd"
    ], out
    assert "Validation failed: no DTD found" in out
    assert f"{agent} failed 1 tests" in out
    assert {(a.node, a.name, a.value) for a in store.set} == {
        ("n1", "master-t1", "5"),
        ("n1", "master-t1", "10"),
    }
    # Its last stop cleared the score (crm_attribute --promotion -D).
    assert (await store.live_attributes()).attributes == ()


async def test_ocf_tester_passes_heartbeat_stateful(tmp_path: Path) -> None:
    require_ocf_agent("heartbeat", "Stateful")
    agent = REAL_OCF_ROOT / "resource.d" / "heartbeat" / "Stateful"
    store = RecordingStore()
    rc, out = await ocf_tester(agent, {"state": str(tmp_path / "st.state")}, store)
    assert rc == 0, out
    assert f"{agent} passed all tests" in out
    assert {a.value for a in store.set} == {"5", "10"}
