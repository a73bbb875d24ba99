"""A token added or revoked by ``config apply`` is honoured by the running API within
seconds, without a restart: the API follows the config the daemon adopts (here the test
plays the daemon: it adopts what was applied, as `ConfigInForce.follow` does)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hakeeper.api import live_access
from hakeeper.balancer.api_token import token_digest
from hakeeper.config import load_spec
from hakeeper.config.loader import spec_from_text
from hakeeper.model.cluster import ClusterSpec
from hakeeper.runtime.store import ClusterStore
from tests.api.conftest import TOKENS, Served, api_section, served, until_answered
from tests.cli.conftest import online
from tests.fakes import LocalCoordinator

WAIT = 20.0
NEWBIE = "n" * 43


def tokens_toml(**roles: str) -> str:
    lines = [
        f'{name} = {{ hash = "{token_digest(TOKENS.get(name, NEWBIE))}", role = "{role}" }}'
        for name, role in roles.items()
    ]
    return "\n[api.tokens]\n" + "\n".join(lines) + "\n"


@dataclass
class Node:
    """The API of a node whose daemon adopts each config stored (`adopt`)."""

    api: Served
    store: ClusterStore
    in_force: ClusterSpec

    async def adopt(self) -> None:
        text = await self.store.stored_config()
        assert text is not None
        self.in_force = spec_from_text(text, "stored config")

    async def until(self, token: str, status: int) -> None:
        await until_answered(self.api, token, status, WAIT)


@pytest.fixture
async def node(
    coord: LocalCoordinator,
    store: ClusterStore,
    spec: ClusterSpec,
    config_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Node]:
    monkeypatch.setattr(live_access, "CHECK_EVERY", 0.1)
    await online(coord, "n1", "n2", "n3")
    text = await asyncio.to_thread(config_file.read_text) + tokens_toml(
        reader="read", admin="admin"
    )
    await store.publish_first_config(text)
    box = Node(None, store, load_spec(config_file))  # type: ignore[arg-type]
    async with served(coord, store, spec, api_section(), lambda: box.in_force) as api:
        box.api = api
        yield box


async def apply(node: Node, text: str) -> None:
    status, body = await node.api.call(
        "POST", "/v1/config/apply", token="admin", body={"text": text}
    )
    assert status == 200, body
    await node.adopt()


async def test_the_stored_configs_tokens_replace_the_local_files_at_start(node: Node) -> None:
    await node.until("operator", 401)  # only in the agent's own file, not in the cluster's
    assert (await node.api.call("GET", "/v1/nodes", token="reader"))[0] == 200


async def test_a_revoked_token_is_refused_and_a_new_one_accepted_without_restart(
    node: Node, config_file: Path
) -> None:
    await node.until("reader", 200)
    await apply(
        node,
        await asyncio.to_thread(config_file.read_text) + tokens_toml(newbie="read", admin="admin"),
    )
    await node.until("reader", 401)
    await node.until(NEWBIE, 200)


async def test_a_new_role_takes_effect_without_restart(node: Node, config_file: Path) -> None:
    await node.until("reader", 200)
    await apply(
        node,
        await asyncio.to_thread(config_file.read_text)
        + tokens_toml(reader="operate", admin="admin"),
    )
    async with asyncio.timeout(WAIT):
        while True:
            status, _ = await node.api.call(
                "POST", "/v1/resources/vip/cleanup", token="reader", body={}
            )
            if status == 200:
                break
            assert status == 403
            await asyncio.sleep(0.1)


async def test_config_plan_names_the_tokens_an_apply_adds_and_revokes(
    node: Node, config_file: Path
) -> None:
    text = await asyncio.to_thread(config_file.read_text)
    new = text + tokens_toml(newbie="read", admin="operate")
    status, body = await node.api.call("POST", "/v1/config/plan", token="admin", body={"text": new})
    assert status == 200, body
    [note] = [n for n in body["notes"] if n.startswith("API tokens")]
    assert "added newbie" in note
    assert "revoked reader" in note
    assert "changed admin" in note
    assert "sha256" not in note
