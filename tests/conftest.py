"""Shared test configuration."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from hakeeper.agents.procfs import proc_stat

# Every external program the tests or the demo start, with the Debian package that ships it.
# `tests/test_system_packages.py` fails when a test starts a program missing here, or when a
# package here is missing from the Makefile's DEB_PKGS (tests) or DEMO_PKGS (demo): a fresh
# machine's `make test` must install everything its tests run.
SYSTEM_PROGRAMS: dict[str, str] = {
    "etcd": "etcd-server",
    "etcdctl": "etcd-client",
    "memcached": "memcached",
    "nginx": "nginx",
    "fence_dummy": "fence-agents",
    "ip": "iproute2",
    "curl": "curl",
    "ss": "iproute2",
    "openssl": "openssl",
    "setpriv": "util-linux",
    "prlimit": "util-linux",
    "/usr/bin/chromium": "chromium",
    "/usr/bin/chromedriver": "chromium-driver",
    "dpkg-query": "dpkg",
    "/usr/lib/ocf/resource.d/heartbeat/Dummy": "resource-agents",
    "/usr/lib/ocf/resource.d/heartbeat/Stateful": "resource-agents",
    "/usr/lib/ocf/resource.d/pacemaker/Stateful": "pacemaker-resource-agents",
    "/usr/sbin/ocf-tester": "resource-agents",
    "xmllint": "libxml2-utils",
    "/usr/share/pacemaker/alerts/alert_file.sh.sample": "pacemaker-common",
    "/usr/share/pacemaker/alerts/alert_snmp.sh.sample": "pacemaker-common",
    "/usr/share/pacemaker/alerts/alert_smtp.sh.sample": "pacemaker-common",
    "msmtp": "msmtp",
    "systemd-analyze": "systemd",
    "/usr/lib/ocf/resource.d/heartbeat/pgsqlms": "resource-agents-paf",
    "/usr/lib/postgresql/15/bin/initdb": "postgresql-15",
    "/usr/lib/postgresql/15/bin/pg_ctl": "postgresql-15",
    "/usr/lib/postgresql/15/bin/pg_basebackup": "postgresql-client-15",
    "/usr/lib/postgresql/15/bin/psql": "postgresql-client-15",
    "unshare": "util-linux",
}

# Packages every Debian system has (Essential: yes): nothing to install.
ESSENTIAL_PACKAGES = frozenset({"coreutils", "dpkg", "util-linux"})
# Programs of hakeeper itself, of Python or of every Debian system: nothing to install.
BUILT_IN_PROGRAMS = frozenset(
    {"hakeeper", "fence_hakeeper_lab", "python", "python3", "sh", "bash", "env", "sleep", "true"}
)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep a report's captured output sendable between test processes.

    Code under test logs hostile input that Python decoded with surrogate escapes (an
    address of bytes that are not UTF-8); pytest-xdist sends reports as UTF-8, and one such
    character crashed the worker. The text keeps its meaning with the escapes spelled out.
    """
    outcome = yield
    report = outcome.get_result()
    report.sections = [
        (title, text.encode("utf-8", "backslashreplace").decode("utf-8"))
        for title, text in report.sections
    ]


def _missing(message: str) -> None:
    """Skip, except under CI, where a skip would hide a missing install step."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def require_binary(name: str) -> None:
    """Skip (fail under CI) when the real program ``name`` is not installed."""
    package = SYSTEM_PROGRAMS[name]
    if shutil.which(name) is None:
        _missing(f"{name} not installed (Debian package {package}; `make test` installs it)")


def require_file(path: Path) -> None:
    """Skip (fail under CI) when the real agent script ``path`` is not installed."""
    package = SYSTEM_PROGRAMS[str(path)]
    if not path.is_file():
        _missing(f"{path} missing (Debian package {package}; `make test` installs it as root)")


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie nobody reaped yet (a process reaped while
    its /proc entry is read counts as gone)."""
    stat = proc_stat(pid)
    return stat is not None and stat[0] != "Z"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebhookReceiver:
    """What a real webhook receiver on loopback got: the bodies whose HMAC-SHA256 signature
    (``X-Hakeeper-Signature-256``) checked out with ``key``, and how many did not."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.bodies: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self.url = ""

    async def accept(self, request: web.Request) -> web.Response:
        raw = await request.read()
        expected = "sha256=" + hmac.new(self.key, raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("X-Hakeeper-Signature-256", ""), expected):
            self.bad_signatures += 1
            return web.Response(status=401)
        self.bodies.append(json.loads(raw))
        return web.Response(text="ok")

    def kinds(self) -> list[str]:
        return [body["event"]["kind"] for body in self.bodies]


@asynccontextmanager
async def serve_webhook(handler: Handler, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve ``handler`` on a free loopback port; yields its URL; stops it afterwards."""
    app = web.Application()
    app.router.add_post("/hook", handler)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://{host}:{port}/hook"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def webhook_receiver(key: bytes) -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver(key)
    async with serve_webhook(receiver.accept) as url:
        receiver.url = url
        yield receiver
