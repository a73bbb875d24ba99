"""Hostile tests of what the CLI's ``--url`` mode reads and of the live token table: each
attack fails, the server still answers, and a normal read afterwards succeeds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest

from hakeeper.api.plan_route import MAX_QUESTIONS
from hakeeper.model.cluster import ClusterSpec
from hakeeper.runtime.store import ClusterStore
from tests.api.conftest import Served, api_section, served
from tests.api.conftest import config_file as config_file
from tests.api.conftest import coord as coord
from tests.api.conftest import spec as spec
from tests.api.conftest import store as store
from tests.cli.conftest import online
from tests.fakes import LocalCoordinator


@pytest.fixture
async def target(
    coord: LocalCoordinator, store: ClusterStore, spec: ClusterSpec
) -> AsyncIterator[Served]:
    await online(coord, "n1", "n2", "n3")
    async with served(coord, store, spec, api_section()) as box:
        yield box


async def still_plans(api: Served) -> None:
    status, body = await api.call("GET", "/v1/plan?what_if=node%20n2%20down", token="reader")
    assert status == 200, body
    assert body["what_if"] == ["node n2 down"]


async def test_a_flood_of_what_if_questions_is_refused(target: Served) -> None:
    query = "&".join(["what_if=quorum%20lost"] * (MAX_QUESTIONS + 1))
    status, body = await target.call("GET", f"/v1/plan?{query}", token="reader")
    assert status == 400
    assert "at most" in body["error"]
    await still_plans(target)


async def test_a_what_if_with_control_characters_is_refused(target: Served) -> None:
    question = quote("node n1 down\x1b[2J\nnode n2 down", safe="")
    status, body = await target.call("GET", f"/v1/plan?what_if={question}", token="reader")
    assert status == 400
    assert "control" in body["error"]
    await still_plans(target)


async def test_a_plan_without_a_token_is_refused(target: Served) -> None:
    status, _ = await target.call("GET", "/v1/plan")
    assert status == 401
    await still_plans(target)
