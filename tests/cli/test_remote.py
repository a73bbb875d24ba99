"""``hakeeper --url``: status and actions through a served API, with the token from the
environment or a file; the same lines and exit statuses as on a cluster host."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from hakeeper.balancer.api_token import write_token_file
from hakeeper.cli.main import app
from hakeeper.runtime.store import ClusterStore
from tests.api.conftest import TOKENS, Served
from tests.cli.conftest import CLUSTER_TOML, KEYS
from tests.cli.remote_support import api as api
from tests.cli.remote_support import back_to_local as back_to_local
from tests.cli.remote_support import cli, runner
from tests.fakes import LocalCoordinator


async def test_status_json_through_the_api_is_the_api_document(api: Served) -> None:
    result = await cli(api, "status", "--json", token="reader")
    assert result.exit_code in (0, 1), result.output
    assert json.loads(result.output)["cluster"] == "c1"


async def test_status_through_the_api_renders_like_a_local_status(api: Served) -> None:
    result = await cli(api, "status", token="reader")
    assert "cluster c1" in result.output
    assert "n3" in result.output


async def test_a_move_through_the_api_prints_the_actions_lines(
    api: Served, store: ClusterStore
) -> None:
    result = await cli(api, "resource", "move", "vip", "n2")
    assert result.exit_code == 0, result.output
    assert "vip moved to n2" in result.output
    assert await store.constraints_of("vip") == {"n2": "move"}


async def test_the_token_file_is_read(api: Served, tmp_path: Path, store: ClusterStore) -> None:
    path = tmp_path / "token"
    write_token_file(path, TOKENS["operator"])
    result = await asyncio.to_thread(
        runner.invoke, app, ["--url", api.url, "--token-file", str(path), "node", "standby", "n2"]
    )
    assert result.exit_code == 0, result.output
    assert (await store.node_flags("n2")).standby


async def test_without_a_token_the_api_refusal_is_shown_and_nothing_changes(
    api: Served, coord: LocalCoordinator
) -> None:
    result = await cli(api, "resource", "ban", "vip", "n2", token=None)
    assert result.exit_code == 2
    assert "401" in result.output
    assert await coord.range(KEYS.constraints) == []


async def test_a_command_the_api_does_not_offer_says_so(api: Served) -> None:
    result = await cli(api, "upgrade")
    assert result.exit_code == 2
    assert "--url" in result.output


async def test_config_apply_through_the_api_needs_yes_then_applies(
    api: Served, store: ClusterStore, tmp_path: Path
) -> None:
    await store.publish_first_config(CLUSTER_TOML)
    new = tmp_path / "new.toml"
    new.write_text(CLUSTER_TOML.replace("score = 100", "score = 50"))
    refused = await cli(api, "config", "apply", str(new), token="admin")
    assert refused.exit_code == 2
    assert "--yes" in refused.output
    done = await cli(api, "config", "apply", str(new), "--yes", token="admin")
    assert done.exit_code == 0, done.output
    assert await store.stored_config() == new.read_text()
