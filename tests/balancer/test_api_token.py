"""The runtime API's token: `hakeeper lb token`, its file, its hash in the config."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request
from typer.testing import CliRunner

from hakeeper.balancer.api_token import (
    read_token_file,
    token_digest,
    token_matches,
    write_token_file,
)
from hakeeper.balancer.config import ApiSpec, insecure_settings, is_loopback, parse_config
from hakeeper.balancer.control_api import screen
from hakeeper.cli.main import app
from hakeeper.errors import ConfigError

TOKEN = "a-test-token-0123456789abcdefghijklmnopqrstu"


def test_only_the_token_matches_its_digest() -> None:
    digest = token_digest(TOKEN)
    assert digest.startswith("sha256:")
    assert len(digest) == 7 + 64
    assert token_matches(TOKEN, digest)
    assert not token_matches(TOKEN + "x", digest)
    assert not token_matches("", digest)
    assert not token_matches("x" * 10_000, digest)


def test_token_file_is_0600_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "lb-token"
    write_token_file(path, TOKEN)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert read_token_file(path) == TOKEN
    with pytest.raises(ConfigError, match="never overwritten"):
        write_token_file(path, "another-token-0123456789")
    assert read_token_file(path) == TOKEN


def test_token_file_others_can_read_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "lb-token"
    write_token_file(path, TOKEN)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_token_file(path)


def test_missing_token_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="hakeeper lb token --file"):
        read_token_file(tmp_path / "none")


def test_lb_token_prints_a_token_and_a_hash_line_that_loads() -> None:
    result = CliRunner().invoke(app, ["lb", "token"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if not line.startswith("#")]
    token, hash_line = lines
    api = tomllib.loads(f'bind = "127.0.0.1:9900"\n{hash_line}')
    spec = ApiSpec.model_validate(api)
    assert spec.token_hash is not None
    assert token_matches(token, spec.token_hash)


def test_lb_token_file_writes_the_token_and_prints_only_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "lb-token"
    result = CliRunner().invoke(app, ["lb", "token", "--file", str(path)])
    assert result.exit_code == 0, result.output
    token = read_token_file(path)
    assert token not in result.output
    assert f'token_hash = "{token_digest(token)}"' in result.output
    assert f"hakeeper lb servers --token-file {path}" in result.output


def test_token_hash_must_be_sha256_hex() -> None:
    with pytest.raises(ConfigError, match=r"api.token_hash: .*hakeeper lb token"):
        parse_config(api_file({"bind": "127.0.0.1:9900", "token_hash": "plain-token"}), "f.toml")


def test_api_beyond_loopback_without_a_token_hash_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"beyond loopback.*token_hash"):
        parse_config(api_file({"bind": "0.0.0.0:9900"}), "f.toml")


def test_api_beyond_loopback_with_a_token_hash_loads() -> None:
    cfg = parse_config(api_file({"bind": "[::]:9900", "token_hash": token_digest(TOKEN)}), "f.toml")
    assert cfg.api.host_port == ("::", 9900)


def test_insecure_settings_name_each_problem_with_its_fix() -> None:
    open_api = parse_config(
        api_file({"bind": "10.0.0.5:9900", "token_hash": token_digest(TOKEN)}), "f"
    )
    assert [p.split(":")[0] for p in insecure_settings(open_api)] == ["api"]
    assert "beyond loopback" in insecure_settings(open_api)[0]
    assert "fix:" in insecure_settings(open_api)[0]
    no_token = parse_config(api_file({"bind": "127.0.0.1:9900"}), "f")
    (problem,) = insecure_settings(no_token)
    assert "no token_hash" in problem
    assert "hakeeper lb token --file" in problem


def test_insecure_settings_are_empty_for_a_loopback_api_with_a_token() -> None:
    cfg = parse_config(api_file({"bind": "127.0.0.1:9900", "token_hash": token_digest(TOKEN)}), "f")
    assert insecure_settings(cfg) == []
    assert insecure_settings(parse_config(api_file(None), "f")) == []


def api_file(api: dict[str, object] | None) -> dict[str, object]:
    data: dict[str, object] = {
        "frontend": [{"name": "f", "bind": "127.0.0.1:0", "backend": "b"}],
        "backend": [{"name": "b", "servers": [{"name": "s", "address": "127.0.0.1:1"}]}],
    }
    if api is not None:
        data["api"] = api
    return data


class _Socket:
    """The two addresses aiohttp asks a transport for: a peer beyond loopback."""

    def __init__(self, peer: tuple[str, int], local: tuple[str, int]) -> None:
        self.names = {"peername": peer, "sockname": local}

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self.names.get(name, default)


def test_reads_from_beyond_loopback_need_the_token() -> None:
    # Only loopback traffic is allowed in tests, so the request is built, not sent.
    cfg = parse_config(api_file({"bind": "0.0.0.0:9900", "token_hash": token_digest(TOKEN)}), "f")
    sock = _Socket(("10.0.0.9", 40000), ("10.0.0.5", 9900))
    host = {"Host": "10.0.0.5:9900"}
    anonymous = make_mocked_request("GET", "/v1/servers", headers=host, transport=sock)
    refusal = screen(anonymous, cfg)
    assert refusal is not None
    assert refusal.status == 401
    with_token = {**host, "Authorization": f"Bearer {TOKEN}"}
    assert (
        screen(make_mocked_request("GET", "/metrics", headers=with_token, transport=sock), cfg)
        is None
    )


def test_loopback_is_recognised_in_every_spelling() -> None:
    assert all(
        is_loopback(h) for h in ("localhost", "127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1")
    )
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.5", "lb.example", ""))
