"""Hostile values for a clone backend's ``role`` (balancer.toml) against a running balancer.

The value is read from a file an operator (or whoever can write it) controls and reaches the
balancer's logs; each test feeds a hostile one through a reload and asserts (1) it is refused
with an error that does not repeat it, (2) the balancer still relays, (3) a normal reload
afterwards applies.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from hakeeper.balancer.config import load_config
from hakeeper.balancer.service import serving
from hakeeper.errors import ConfigError
from tests.balancer.backends import HttpBackend
from tests.balancer.conftest import get

STATIC = """
[[frontend]]
name = "fe"
bind = "127.0.0.1:0"
backend = "be"

[[backend]]
name = "be"
servers = [{{ name = "{name}", address = "{address}" }}]
check = {{ type = "none" }}
"""

HOSTILE = {
    "control characters": '"promoted\\u001b[2J\\r\\nevent=forged"',
    "a nul byte": '"promoted\\u0000"',
    "a megabyte": '"' + "p" * 1_000_000 + '"',
    "a table": '{ role = "promoted" }',
    "a number": "1",
}


def with_clone_role(static: str, role: str) -> str:
    return static + (
        '\n[[backend]]\nname = "pg"\n'
        f'clone = {{ resource = "pg", port = 5432, cluster_config = "c.toml", role = {role} }}\n'
    )


@pytest.mark.parametrize("role", HOSTILE.values(), ids=HOSTILE.keys())
async def test_a_hostile_clone_role_is_refused_and_the_balancer_keeps_serving(
    tmp_path: Path, role: str
) -> None:
    good = await HttpBackend("good").start()
    path = tmp_path / "balancer.toml"
    static = STATIC.format(name="good", address=good.address)
    path.write_text(static)
    try:
        async with serving(load_config(path), checks=False, source=path) as lb:
            port = lb.port_of("fe")
            path.write_text(with_clone_role(static, role))
            assert tomllib.loads(path.read_text())  # the file itself is valid TOML
            with pytest.raises(ConfigError) as refused:
                await lb.reload_file()
            message = str(refused.value)
            assert "backend.1.clone.role" in message
            assert not any(ord(c) < 32 and c != "\n" for c in message)
            assert "event=forged" not in message
            assert len(message) < 1000
            assert set(lb.backends) == {"be"}  # nothing of the hostile file applied
            assert (await get(port)).body == b"good"
            other = await HttpBackend("other").start()
            try:
                path.write_text(STATIC.format(name="other", address=other.address))
                await lb.reload_file()
                assert (await get(port)).body == b"other"
            finally:
                await other.stop()
    finally:
        await good.stop()
