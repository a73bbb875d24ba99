"""The runtime REST API, Prometheus metrics and `hakeeper lb` against a running balancer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from typer.testing import CliRunner

from hakeeper.balancer.api_token import token_digest, write_token_file
from hakeeper.balancer.config import load_config, parse_config
from hakeeper.balancer.service import Balancer, serving
from hakeeper.cli.main import app
from tests.balancer.backends import HttpBackend
from tests.balancer.conftest import get

TOKEN = "test-token-0123456789abcdefghijklmnopqrstuvw"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def file_text(a: HttpBackend, b: HttpBackend) -> str:
    return f"""
[[frontend]]
name = "fe"
bind = "127.0.0.1:0"
backend = "be"

[[backend]]
name = "be"
servers = [{{ name = "a", address = "{a.address}" }}, {{ name = "b", address = "{b.address}" }}]
check = {{ type = "none" }}

[api]
bind = "127.0.0.1:0"
token_hash = "{token_digest(TOKEN)}"
"""


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[Balancer, str, Path]]:
    a = await HttpBackend("a").start()
    b = await HttpBackend("b").start()
    path = tmp_path / "balancer.toml"
    path.write_text(file_text(a, b))
    try:
        async with serving(load_config(path), source=path) as lb:
            yield lb, f"127.0.0.1:{lb.api_port}", path
    finally:
        await a.stop()
        await b.stop()


async def test_api_lists_servers_with_counters(running: tuple[Balancer, str, Path]) -> None:
    lb, api, _ = running
    await get(lb.port_of("fe"))
    async with aiohttp.ClientSession() as session, session.get(f"http://{api}/v1/servers") as r:
        rows = (await r.json())["servers"]
    assert [(r["name"], r["state"]) for r in rows] == [("a", "up"), ("b", "up")]
    assert sum(r["requests"] for r in rows) == 1


async def test_api_drain_takes_effect_at_once(running: tuple[Balancer, str, Path]) -> None:
    lb, api, _ = running
    async with aiohttp.ClientSession() as session:
        url = f"http://{api}/v1/servers/be/a"
        async with session.post(url, json={"action": "drain"}, headers=AUTH) as resp:
            assert resp.status == 200
            assert (await resp.json())["state"] == "drain"
    bodies = [(await get(lb.port_of("fe"))).body for _ in range(4)]
    assert bodies == [b"b"] * 4


async def test_api_refuses_unknown_server_and_bad_action(
    running: tuple[Balancer, str, Path],
) -> None:
    _, api, _ = running
    async with aiohttp.ClientSession() as session:
        url = f"http://{api}/v1/servers/be"
        async with session.post(f"{url}/zz", json={"action": "drain"}, headers=AUTH) as r:
            assert r.status == 404
            assert "known: ['a', 'b']" in (await r.json())["error"]
        async with session.post(f"{url}/a", json={"action": "up"}, headers=AUTH) as r:
            assert r.status == 400


async def test_metrics_are_exported_in_promex_style(running: tuple[Balancer, str, Path]) -> None:
    lb, api, _ = running
    for _ in range(4):
        await get(lb.port_of("fe"))
    async with aiohttp.ClientSession() as session, session.get(f"http://{api}/metrics") as resp:
        text = await resp.text()
    assert 'hakeeper_balancer_server_up{backend="be",server="a"} 1.0' in text
    assert 'hakeeper_balancer_requests_total{backend="be",server="b"} 2.0' in text
    assert 'hakeeper_balancer_response_seconds_count{backend="be",server="a"} 2.0' in text
    assert "hakeeper_balancer_check_failures_total" in text


async def test_lb_cli_sets_weight_and_lists(
    running: tuple[Balancer, str, Path], tmp_path: Path
) -> None:
    lb, api, _ = running
    token_file = tmp_path / "lb-token"
    write_token_file(token_file, TOKEN)
    runner = CliRunner()
    argv = ["lb", "weight", "be/a", "7", "--api", api, "--json", "--token-file", str(token_file)]
    result = await asyncio.to_thread(runner.invoke, app, argv)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["weight"] == 7
    assert lb.backends["be"].servers["a"].weight == 7
    listed = await asyncio.to_thread(runner.invoke, app, ["lb", "servers", "--api", api, "--json"])
    assert {r["name"]: r["weight"] for r in json.loads(listed.output)} == {"a": 7, "b": 1}


async def test_lb_cli_says_when_the_api_is_unreachable() -> None:
    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["lb", "servers", "--api", "127.0.0.1:1"]
    )
    assert result.exit_code == 3


async def test_api_reload_rereads_the_file(running: tuple[Balancer, str, Path]) -> None:
    lb, api, path = running
    port = lb.port_of("fe")
    text = path.read_text().replace(
        'bind = "127.0.0.1:0"\nbackend', f'bind = "127.0.0.1:{port}"\nbackend'
    )
    path.write_text(text.replace('name = "b", address', 'name = "c", address'))
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://{api}/v1/reload", json={}, headers=AUTH) as r,
    ):
        assert r.status == 200
    assert set(lb.backends["be"].servers) == {"a", "c"}
    assert lb.port_of("fe") == port


def test_config_without_api_bind_has_no_api() -> None:
    cfg = parse_config(
        {
            "frontend": [{"name": "f", "bind": "127.0.0.1:0", "backend": "b"}],
            "backend": [{"name": "b", "servers": [{"name": "s", "address": "127.0.0.1:1"}]}],
        },
        "t",
    )
    assert cfg.api.bind is None


async def test_lb_cli_change_without_a_token_says_how_to_send_one(
    running: tuple[Balancer, str, Path],
) -> None:
    lb, api, _ = running
    result = await asyncio.to_thread(CliRunner().invoke, app, ["lb", "drain", "be/a", "--api", api])
    assert result.exit_code == 2
    assert "--token-file" in result.output
    assert lb.backends["be"].servers["a"].admin == "ready"


async def test_a_reload_rotates_the_api_token(running: tuple[Balancer, str, Path]) -> None:
    lb, api, path = running
    new = "rotated-token-0123456789abcdefghijklmnopqrs"
    path.write_text(path.read_text().replace(token_digest(TOKEN), token_digest(new)))
    async with aiohttp.ClientSession() as session:
        async with session.post(f"http://{api}/v1/reload", json={}, headers=AUTH) as r:
            assert r.status == 200
        url = f"http://{api}/v1/servers/be/a"
        async with session.post(url, json={"action": "drain"}, headers=AUTH) as r:
            assert r.status == 401
        bearer = {"Authorization": f"Bearer {new}"}
        async with session.post(url, json={"action": "drain"}, headers=bearer) as r:
            assert r.status == 200
    assert lb.backends["be"].servers["a"].admin == "drain"
