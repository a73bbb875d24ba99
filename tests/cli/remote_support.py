"""What the ``--url`` tests share: an API served over the CLI tests' small cluster (three
members), and the CLI run against it with a token of the given role."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from typer.testing import CliRunner, Result

from hakeeper.cli import remote
from hakeeper.cli.main import app
from hakeeper.model.cluster import ClusterSpec
from hakeeper.runtime.store import ClusterStore
from tests.api.conftest import TOKENS, Served, api_section, served
from tests.cli.conftest import online
from tests.fakes import LocalCoordinator

runner = CliRunner()


@pytest.fixture(autouse=True)
def back_to_local() -> Iterator[None]:
    """``--url`` is kept by the CLI for the process: tests after these run locally."""
    yield
    remote.configure(None, None, None)


@pytest.fixture
async def api(
    coord: LocalCoordinator, store: ClusterStore, spec: ClusterSpec
) -> AsyncIterator[Served]:
    await online(coord, "n1", "n2", "n3")
    async with served(coord, store, spec, api_section()) as box:
        yield box


async def cli(api: Served, *words: str, token: str | None = "operator") -> Result:
    env = {"HAKEEPER_TOKEN": TOKENS[token]} if token else {"HAKEEPER_TOKEN": ""}
    return await asyncio.to_thread(runner.invoke, app, ["--url", api.url, *words], env=env)
