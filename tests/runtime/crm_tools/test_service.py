"""The attribute service: its answers from the cluster store, and the installed tools end to
end over the real socket (real executables, as an agent runs them)."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from hakeeper.config.loader import spec_from_text
from hakeeper.config.secret_file import SecretFile, write_secret_file
from hakeeper.model.records import InstanceStatus
from hakeeper.runtime.crm_tools.install import install_tools
from hakeeper.runtime.crm_tools.protocol import ToolRequest
from hakeeper.runtime.crm_tools.service import AttributeService, socket_path
from hakeeper.runtime.keys import KeySpace
from hakeeper.runtime.store import ClusterStore
from tests.fakes import LocalCoordinator

KEYS = KeySpace("c1")
SPEC = spec_from_text(
    '[cluster]\nname = "c1"\n[nodes.n1]\n[nodes.n2]\n[resources.pgsqld]\n'
    'agent = "process"\nparams = { command = "sleep 1" }\n'
    '[clones.pgsql-ha]\nresource = "pgsqld"\npromotable = true\nnotify = true\n',
    "test",
)


def service_on(store: ClusterStore, state_dir: Path, node: str = "n1") -> AttributeService:
    secret = state_dir / "secret"
    if not secret.exists():
        write_secret_file(secret)
    return AttributeService(
        node=node,
        spec=lambda: SPEC,
        store=store,
        secret=SecretFile(secret),
        path=socket_path(state_dir),
    )


async def test_answers_follow_pacemaker(short_dir: Path) -> None:
    coord = LocalCoordinator()
    store = ClusterStore(coord, KEYS)
    service = service_on(store, short_dir)
    await coord.put(KEYS.member("n2"), b"{}")
    set_n3 = await service.answer(ToolRequest("attr_set", "n3", "x", "1"))
    assert set_n3.missing  # n3 is not a node of the cluster
    for node in ("n1", "n2"):
        assert not (await service.answer(ToolRequest("attr_set", node, "x", node))).error
    # n1 answers and has not joined yet: its own transient attributes count.
    got = await service.answer(ToolRequest("attr_get", "n1", "x"))
    assert got.value == "n1"
    await coord.delete(KEYS.member("n2"))
    assert (await service.answer(ToolRequest("attr_get", "n2", "x"))).missing
    meta = await service.answer(ToolRequest("resource_meta", name="notify", resource="pgsqld:1"))
    assert meta.value == "true"
    nodes = await service.answer(ToolRequest("nodes"))
    assert [(n.name, n.member) for n in nodes.nodes] == [("n1", True), ("n2", False)]
    bad = await service.answer(ToolRequest("attr_set", "n1", "x", "a\nb"))
    assert "newline" in bad.error


async def test_cluster_properties_come_from_the_cluster_file(short_dir: Path) -> None:
    service = service_on(ClusterStore(LocalCoordinator(), KEYS), short_dir)
    name = await service.answer(ToolRequest("property", name="cluster-name"))
    assert name.value == "c1"
    fencing = await service.answer(ToolRequest("property", name="stonith-enabled"))
    assert fencing.value == "true"
    assert (await service.answer(ToolRequest("property", name="no-such"))).missing


async def test_locate_names_members_running_the_resource(short_dir: Path) -> None:
    coord = LocalCoordinator()
    store = ClusterStore(coord, KEYS)
    await coord.put(KEYS.member("n1"), b"{}")
    await store.report(InstanceStatus("pgsqld", "n1", 0, "promoted", 1, time.time()))
    await store.report(InstanceStatus("pgsqld", "n2", 0, "started", 1, time.time()))
    answer = await service_on(store, short_dir).answer(ToolRequest("locate", resource="pgsql-ha"))
    assert answer.located == (("n1", "Promoted"),)


@asynccontextmanager
async def serving(state_dir: Path) -> AsyncIterator[ClusterStore]:
    store = ClusterStore(LocalCoordinator(), KEYS)
    service = service_on(store, state_dir)
    install_tools(state_dir, state_dir / "secret")
    async with service.serving():
        yield store


def tool(state_dir: Path, command: str) -> subprocess.CompletedProcess[str]:
    name, *argv = command.split()
    env = {**os.environ, "OCF_RESOURCE_INSTANCE": "pgsqld"}
    return subprocess.run(
        [str(state_dir / "crm-tools" / name), *argv],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip


async def test_installed_tools_reach_the_store_through_the_socket(short_dir: Path) -> None:
    async with serving(short_dir) as store:
        assert stat.S_IMODE(socket_path(short_dir).stat().st_mode) == 0o600
        assert stat.S_IMODE((short_dir / "crm-tools").stat().st_mode) == 0o700
        done = await asyncio.to_thread(tool, short_dir, "crm_master -N n2 -q -v 990")
        assert (done.returncode, done.stderr) == (0, "")
        observed = await store.observe(SPEC, time.time())
        assert [(a.node, a.name, a.value) for a in observed.attributes] == [
            ("n2", "master-pgsqld", "990")
        ]
        got = await asyncio.to_thread(tool, short_dir, "crm_master -N n2 --quiet --get-value")
        assert (got.returncode, got.stdout) == (0, "990\n")
        name = await asyncio.to_thread(tool, short_dir, "crm_node -n")
        assert name.stdout == "n1\n"
    gone = await asyncio.to_thread(tool, short_dir, "crm_node -n")
    assert gone.returncode == 102
    assert "hakeeper agent" in gone.stderr
