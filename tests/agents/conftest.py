"""Fixtures for the resource-agent tests: fake OCF roots and init dirs, a namespace with a
veth pair, and cleanup.

Every process a test starts is recorded by process group and killed at teardown, so a
failing test leaves nothing running. Only groups the tests themselves created are signalled.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pyroute2 import IPRoute, netns

from hakeeper.agents.runner import live_group_members
from tests.conftest import require_file

REAL_OCF_ROOT = Path("/usr/lib/ocf")


@contextlib.contextmanager
def veth_namespace(tag: str, mac: str) -> Iterator[str]:
    """A network namespace of the test's own (root) holding ``eth0`` (hardware address
    ``mac``) cabled to ``peer0``, everything up; removed on the way out."""
    name = f"hk{secrets.token_hex(3)}-{tag}"
    netns.create(name)
    try:
        with IPRoute(netns=name) as ipr:
            ipr.link("add", ifname="eth0", kind="veth", peer={"ifname": "peer0"})
            for ifname in ("lo", "eth0", "peer0"):
                ipr.link("set", index=ipr.link_lookup(ifname=ifname)[0], state="up")
            ipr.link("set", index=ipr.link_lookup(ifname="eth0")[0], address=mac)
        yield name
    finally:
        netns.remove(name)


def require_ocf_agent(provider: str, type_: str) -> None:
    """Skip (fail under CI) when Debian's agent ``provider:type_`` is not installed."""
    require_file(REAL_OCF_ROOT / "resource.d" / provider / type_)


def write_script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body).lstrip())
    path.chmod(0o755)
    return path


@pytest.fixture
def fake_ocf_root(tmp_path: Path) -> Path:
    """An OCF_ROOT with an empty ``resource.d/test`` provider directory."""
    root = tmp_path / "ocf"
    (root / "resource.d" / "test").mkdir(parents=True)
    return root


@pytest.fixture
def ocf_script(fake_ocf_root: Path) -> Callable[[str, str], Path]:
    """Write ``ocf:test:<name>`` with the given shell body (meta-data answered for you)."""

    def make(name: str, body: str) -> Path:
        meta = (
            'if [ "$1" = meta-data ]; then\n'
            f'  echo \'<resource-agent name="{name}"><version>1.1</version>'
            "<parameters/><actions/></resource-agent>'\n"
            "  exit 0\n"
            "fi\n"
        )
        return write_script(
            fake_ocf_root / "resource.d" / "test" / name, meta + textwrap.dedent(body)
        )

    return make


def _gone(pgid: int) -> bool:
    return not live_group_members(pgid)


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def group_gone(pgid: int, timeout: float = 15.0) -> bool:
    return wait_until(lambda: _gone(pgid), timeout)


@pytest.fixture
def kill_groups() -> Iterator[list[int]]:
    """Append process-group ids here; they are SIGKILLed at teardown (pass or fail)."""
    groups: list[int] = []
    yield groups
    for pgid in groups:
        if live_group_members(pgid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
