"""Fixtures: a standalone store process and a real memcached, both killed at teardown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hakeeper.lab.processes import free_port
from tests.conftest import require_binary
from tests.sessions.cluster import StoreCluster
from tests.sessions.servers import start_memcached, start_store


@pytest.fixture
def store_address(tmp_path: Path) -> Iterator[str]:
    address = f"127.0.0.1:{free_port()}"
    proc = start_store(tmp_path, "store", address)
    try:
        yield address
    finally:
        proc.kill()


@pytest.fixture
def memcached_address(tmp_path: Path) -> Iterator[str]:
    require_binary("memcached")
    proc, port = start_memcached(tmp_path)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()


@pytest.fixture
def store_cluster(tmp_path: Path) -> Iterator[StoreCluster]:
    cluster = StoreCluster(tmp_path)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()
