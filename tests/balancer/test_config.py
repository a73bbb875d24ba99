"""The balancer file: defaults, and errors that name the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from hakeeper.balancer.config import load_config, parse_config
from hakeeper.errors import ConfigError

GOOD = """
[[frontend]]
name = "web"
bind = "127.0.0.1:8080"
backend = "app"

[[backend]]
name = "app"
policy = "swrr"
servers = [
  { name = "a", address = "127.0.0.1:9001", weight = 3 },
  { name = "b", address = "127.0.0.1:9002", backup = true },
]
"""


def test_a_small_file_loads_with_haproxy_defaults(tmp_path: Path) -> None:
    path = tmp_path / "balancer.toml"
    path.write_text(GOOD)
    cfg = load_config(path)
    assert cfg.frontend[0].mode == "http"
    backend = cfg.backend[0]
    assert backend.servers[0].host_port == ("127.0.0.1", 9001)
    assert backend.servers[1].backup
    assert (backend.check.inter, backend.check.fall, backend.check.rise) == (2.0, 3, 2)


def test_unknown_backend_is_named_with_the_choices() -> None:
    data = {
        "frontend": [{"name": "web", "bind": "127.0.0.1:1", "backend": "nope"}],
        "backend": [{"name": "app", "servers": [{"name": "a", "address": "127.0.0.1:2"}]}],
    }
    with pytest.raises(ConfigError, match=r"backend 'nope'.*\['app'\]"):
        parse_config(data, "f.toml")


def test_bad_address_names_the_key() -> None:
    data = {
        "frontend": [{"name": "web", "bind": "127.0.0.1:1", "backend": "app"}],
        "backend": [{"name": "app", "servers": [{"name": "a", "address": "nohost"}]}],
    }
    with pytest.raises(ConfigError, match=r"f.toml: backend.0.servers.0.address: .*host:port"):
        parse_config(data, "f.toml")


def test_cookie_on_a_tcp_frontend_is_refused() -> None:
    data = {
        "frontend": [{"name": "t", "bind": "127.0.0.1:1", "backend": "app", "mode": "tcp"}],
        "backend": [
            {"name": "app", "cookie": "S", "servers": [{"name": "a", "address": "127.0.0.1:2"}]}
        ],
    }
    with pytest.raises(ConfigError, match="needs mode http"):
        parse_config(data, "f.toml")


def test_unreadable_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def test_an_ipv6_server_and_bind_are_read_without_brackets() -> None:
    data = {
        "frontend": [{"name": "web", "bind": "[::1]:0", "backend": "app"}],
        "backend": [{"name": "app", "servers": [{"name": "a", "address": "[::1]:9001"}]}],
    }
    cfg = parse_config(data, "f.toml")
    assert (cfg.frontend[0].host_port, cfg.backend[0].servers[0].host_port) == (
        ("::1", 0),
        ("::1", 9001),
    )


def test_a_server_on_port_0_is_refused_naming_the_key() -> None:
    data = {
        "frontend": [{"name": "web", "bind": "127.0.0.1:1", "backend": "app"}],
        "backend": [{"name": "app", "servers": [{"name": "a", "address": "127.0.0.1:0"}]}],
    }
    with pytest.raises(ConfigError, match=r"servers.0.address: .*port must be a number from 1"):
        parse_config(data, "f.toml")


def clone_backend(role: object) -> dict[str, object]:
    clone = {"resource": "pg", "port": 5432, "cluster_config": "c.toml", "role": role}
    return {
        "frontend": [{"name": "db", "bind": "127.0.0.1:1", "backend": "pg", "mode": "tcp"}],
        "backend": [{"name": "pg", "clone": clone}],
    }


def test_a_clone_backend_may_follow_only_the_primary_or_only_the_replicas() -> None:
    for role in ("promoted", "unpromoted", None):
        clone = parse_config(clone_backend(role), "f").backend[0].clone
        assert clone is not None
        assert clone.role == role


def test_an_unknown_clone_role_names_the_key_and_the_two_words() -> None:
    with pytest.raises(
        ConfigError, match=r'f: backend.0.clone.role: .*"promoted" .*"unpromoted" .*leave role out'
    ):
        parse_config(clone_backend("primary"), "f")
