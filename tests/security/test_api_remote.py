"""Hostile tests of what the CLI's ``--url`` mode reads and of the live token table: each
attack fails, the server still answers, and a normal request afterwards succeeds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import pytest

from hakeeper.api import live_access
from hakeeper.api.plan_route import MAX_QUESTIONS
from hakeeper.balancer.api_token import token_digest
from hakeeper.config import load_spec
from hakeeper.model.cluster import ClusterSpec
from hakeeper.runtime.store import ClusterStore
from tests.api.conftest import TOKENS, Served, api_section, served, until_answered
from tests.api.conftest import config_file as config_file
from tests.api.conftest import coord as coord
from tests.api.conftest import spec as spec
from tests.api.conftest import store as store
from tests.cli.conftest import KEYS, online
from tests.fakes import LocalCoordinator

WAIT = 20.0
TOKENS_TOML = f"""
[api.tokens]
reader = {{ hash = "{token_digest(TOKENS["reader"])}", role = "read" }}
admin = {{ hash = "{token_digest(TOKENS["admin"])}", role = "admin" }}
"""


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


# --- the live token table (hakeeper.api.live_access) ----------------------------------------


@pytest.fixture
async def following(
    coord: LocalCoordinator,
    store: ClusterStore,
    spec: ClusterSpec,
    config_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[Served, list[ClusterSpec]]]:
    """An API whose config in force is the last of a list the test appends to (a daemon
    adopting a config), over a stored config whose tokens are the reader's and admin's."""
    monkeypatch.setattr(live_access, "CHECK_EVERY", 0.1)
    await online(coord, "n1", "n2", "n3")
    await store.publish_first_config(await asyncio.to_thread(config_file.read_text) + TOKENS_TOML)
    adopted = [load_spec(config_file)]
    async with served(coord, store, spec, api_section(), lambda: adopted[-1]) as box:
        await until_answered(box, "operator", 401, WAIT)  # the stored table is in force
        yield box, adopted


async def still_reads_and_applies(api: Served, store: ClusterStore, config_file: Path) -> None:
    """The tokens in force still work, and a valid config is still applied."""
    assert (await api.call("GET", "/v1/nodes", token="reader"))[0] == 200
    text = await asyncio.to_thread(config_file.read_text) + TOKENS_TOML
    status, body = await api.call("POST", "/v1/config/apply", token="admin", body={"text": text})
    assert status == 200, body
    assert await store.stored_config() == text


@pytest.mark.parametrize(
    "stored",
    [
        b"[cluster\nname = ",  # not TOML
        b'[cluster]\nname = "c1"\n[api.tokens]\nx = { hash = "the-token", role = "admin" }\n',
        b"\xff\xfe not UTF-8",
        b'[cluster]\nname = "other"\n[nodes.n1]\naddress = "127.0.0.1"\n',
    ],
    ids=["not-toml", "invalid-api-section", "not-utf8", "another-cluster"],
)
async def test_a_stored_config_that_does_not_load_never_empties_the_token_table(
    following: tuple[Served, list[ClusterSpec]],
    coord: LocalCoordinator,
    store: ClusterStore,
    config_file: Path,
    stored: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api, adopted = following
    caplog.set_level(logging.ERROR, logger=live_access.__name__)
    await coord.put(KEYS.config, stored)
    adopted.append(load_spec(config_file))  # a config in force changed: the API re-reads
    async with asyncio.timeout(WAIT):
        while True:  # until the API has read the stored config and refused it
            if "event=api_access_kept" in caplog.text:
                break
            await asyncio.sleep(0.05)
    assert (await api.call("GET", "/v1/nodes", token="reader"))[0] == 200
    assert (await api.call("GET", "/v1/nodes", token="operator"))[0] == 401
    await still_reads_and_applies(api, store, config_file)
