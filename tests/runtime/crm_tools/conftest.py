"""A fake daemon for the tools' unit tests, and a short-path state dir for real sockets."""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hakeeper.config.secret_file import SecretFile, write_secret_file
from hakeeper.model.cluster import ClusterSpec
from hakeeper.runtime.crm_tools.client import ToolUnavailable
from hakeeper.runtime.crm_tools.install import install_tools
from hakeeper.runtime.crm_tools.protocol import NodeEntry, ToolAnswer, ToolRequest
from hakeeper.runtime.crm_tools.service import AttributeService, socket_path
from hakeeper.runtime.crm_tools.tools import run
from hakeeper.runtime.store import ClusterStore

MISSING = ToolAnswer(error="No such device or address", missing=True)


@dataclass
class FakeDaemon:
    """Answers as the attribute service does, from a dict; records every request."""

    local: str = "n1"
    members: tuple[str, ...] = ("n1", "n2")
    nodes: tuple[str, ...] = ("n1", "n2", "n3")
    attrs: dict[tuple[str, str, str], tuple[str, bool]] = field(default_factory=dict)
    meta: dict[str, dict[str, str]] = field(default_factory=dict)
    located: tuple[tuple[str, str], ...] = ()
    properties: dict[str, str] = field(default_factory=lambda: {"cluster-name": "c1"})
    seen: list[ToolRequest] = field(default_factory=list)
    down: bool = False

    def ask(self, request: ToolRequest) -> ToolAnswer:
        if self.down:
            raise ToolUnavailable("connection refused")
        self.seen.append(request)
        key = (request.node, request.name, request.lifetime)
        if request.op == "attr_set":
            self.attrs[key] = (request.value, request.private)
        elif request.op == "attr_delete":
            self.attrs.pop(key, None)
        elif request.op == "attr_get":
            return ToolAnswer(value=self.attrs[key][0]) if key in self.attrs else MISSING
        elif request.op == "nodes":
            entries = tuple(
                NodeEntry(i, n, n in self.members) for i, n in enumerate(self.nodes, start=1)
            )
            return ToolAnswer(local=self.local, nodes=entries)
        elif request.op == "resource_meta":
            value = self.meta.get(request.resource, {}).get(request.name)
            if value is None:
                return ToolAnswer(error=f"Attribute '{request.name}' not found", missing=True)
            return ToolAnswer(value=value)
        elif request.op == "property":
            value = self.properties.get(request.name)
            return MISSING if value is None else ToolAnswer(value=value)
        elif request.op == "locate":
            return ToolAnswer(located=self.located)
        return ToolAnswer()


@dataclass
class Ran:
    code: int
    out: str
    err: str


def call(daemon: FakeDaemon, command: str, env: dict[str, str] | None = None) -> Ran:
    """Run ``command`` (``tool args...``, split on spaces) against ``daemon``."""
    tool, *argv = command.split()
    out, err = io.StringIO(), io.StringIO()
    code = run(tool, argv, env=env or {}, client=daemon, out=out, err=err)
    return Ran(code, out.getvalue(), err.getvalue())


@pytest.fixture
def daemon() -> FakeDaemon:
    return FakeDaemon()


@contextlib.contextmanager
def short_state_dir() -> Iterator[Path]:
    """A state dir with a short path: a unix socket path is at most 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="hk-crm-", dir="/tmp"))
    path.chmod(0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    with short_state_dir() as path:
        yield path


@contextlib.asynccontextmanager
async def served_tools(spec: ClusterSpec, store: ClusterStore, node: str) -> AsyncIterator[Path]:
    """The real tools of ``node`` (installed executables, a real socket) answered from
    ``store``, as a node daemon serves them: the directory agents get as ``HA_SBIN_DIR``."""
    with short_state_dir() as state_dir:
        write_secret_file(state_dir / "secret")
        service = AttributeService(
            node=node, spec=lambda: spec, store=store,
            secret=SecretFile(state_dir / "secret"), path=socket_path(state_dir),
        )  # fmt: skip
        where = install_tools(state_dir, state_dir / "secret")
        async with service.serving():
            yield where
