"""Fixtures for the namespace-lab tests: one lab per module, always torn down.

The lab tests need root (network namespaces); CI runs as root. Without root they skip, and
under CI they fail, since a skip there would hide that they never ran.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyroute2 import netns

from hakeeper.lab.netns_fence import kill_all_in
from hakeeper.lab.netns_lab import NetnsLab


def require_root() -> None:
    if os.geteuid() != 0:
        message = "the namespace lab needs root (network namespaces, veths, a bridge)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@contextlib.contextmanager
def throwaway_namespace(tag: str) -> Iterator[str]:
    """A network namespace of the test's own (root), removed with every process in it."""
    require_root()
    name = f"hk{secrets.token_hex(3)}-{tag}"
    netns.create(name)
    try:
        yield name
    finally:
        kill_all_in(name)
        netns.remove(name)


@pytest.fixture
def lab_dir() -> Iterator[Path]:
    """A directory of our own: pytest prunes old tmp_path bases, and other engineers' test
    runs on this machine would delete a running lab's config and fence targets."""
    made = Path(tempfile.mkdtemp(prefix="hakeeper-lab-test-"))
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)


@pytest.fixture(scope="module")
def lab() -> Iterator[NetnsLab]:
    """A running three-node lab with a client, ``fast`` profile, VIP preferring n1."""
    require_root()
    folder = Path(tempfile.mkdtemp(prefix="hakeeper-lab-test-"))
    try:
        made = NetnsLab.create(folder, nodes=3, client=True, profile="fast", failback="auto")
        try:
            yield made
        finally:
            made.down()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
