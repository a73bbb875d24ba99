"""Shared test configuration."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

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
    "dpkg-query": "dpkg",
    "/usr/lib/ocf/resource.d/heartbeat/Dummy": "resource-agents",
    "/usr/lib/ocf/resource.d/heartbeat/Stateful": "resource-agents",
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
