"""Bad input and unreachable peers on the embedded Raft backend."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hakeeper.config.secret_file import write_secret_file
from hakeeper.coord.raft import RaftCoordinator
from hakeeper.errors import ConfigError, EngineMismatch, Unreachable
from hakeeper.lab.processes import free_port
from hakeeper.lab.raft_cluster import RaftCluster


@pytest.mark.parametrize(
    ("peers", "options", "message"),
    [
        ([], {}, "peer list is empty"),
        (["127.0.0.1"], {}, "is not host:port"),
        (["127.0.0.1:99999"], {}, "is not host:port"),
        (["127.0.0.1:7001", "127.0.0.1:7001"], {}, "listed twice"),
        (["127.0.0.1:7001"], {"self_address": "127.0.0.1:7002"}, "not in the peer list"),
        (["127.0.0.1:7001"], {"self_address": "127.0.0.1:7001"}, "needs a data_dir"),
        (["127.0.0.1:7001"], {"secret_file": Path("/nonexistent/secret")}, "hakeeper init"),
        (["127.0.0.1:7001"], {}, "no cluster secret file given.*hakeeper init"),
    ],
)
def test_bad_peer_settings_are_refused_with_the_fix(
    peers: list[str], options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        RaftCoordinator(peers, **options)  # type: ignore[arg-type]


async def test_no_running_peer_is_reported_unreachable_with_the_peers(tmp_path: Path) -> None:
    peers = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    secret_file = tmp_path / "secret"
    write_secret_file(secret_file)
    started = time.monotonic()
    with pytest.raises(Unreachable, match=peers[0]):
        await RaftCoordinator.open(peers, ready_timeout=2.0, secret_file=secret_file)
    assert time.monotonic() - started < 15


@pytest.mark.slow
async def test_a_client_with_another_peer_list_is_refused(tmp_path: Path) -> None:
    async with RaftCluster(3, base_dir=tmp_path) as cluster:
        other = [*cluster.endpoints, f"127.0.0.1:{free_port()}"]
        with pytest.raises(EngineMismatch, match="disagrees"):
            await RaftCoordinator.open(other, secret_file=cluster.secret_file, ready_timeout=15.0)


@pytest.mark.slow
async def test_members_with_a_shared_secret_form_a_cluster(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    write_secret_file(secret_file)
    cluster = RaftCluster(3, base_dir=tmp_path, secret_file=secret_file)
    async with cluster:
        client = await cluster.client()
        await client.put("/enc", b"1")
        assert (await client.get("/enc")) is not None


def test_a_member_without_a_secret_file_refuses_to_start(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hakeeper.cli.main import app

    address = f"127.0.0.1:{free_port()}"
    result = CliRunner().invoke(
        app,
        ["coord", "member", "--address", address, "--peers", address,
         "--data-dir", str(tmp_path / "m1")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--secret-file is required" in result.output
    assert "hakeeper init" in result.output
    assert not (tmp_path / "m1").exists()


@pytest.mark.slow
async def test_a_member_keeps_its_log_in_a_private_directory(tmp_path: Path) -> None:
    async with RaftCluster(3, base_dir=tmp_path) as cluster:
        client = await cluster.client()
        await client.put("/private", b"1")
        for name in cluster.names:
            mode = (tmp_path / name).stat().st_mode & 0o777
            assert mode == 0o700, f"{name}: data dir mode {mode:04o}"
