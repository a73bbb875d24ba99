"""Shared test configuration."""

from __future__ import annotations

import os
import shutil

import pytest


def require_binary(name: str, package: str) -> None:
    """Skip when a real server is missing, except under CI, where a skip would hide a gap."""
    if shutil.which(name) is None:
        message = (
            f"{name} not installed (Debian package {package}; `make test` installs it as root)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
