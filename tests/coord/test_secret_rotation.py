"""`hakeeper secret rotate`: the file edits, and a rotation on a real group under writes."""

from __future__ import annotations

import asyncio
import itertools
import os
import shlex
import socket
import stat
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hakeeper.cli.main import app
from hakeeper.config.secret_file import read_secret_file, write_secret_file
from hakeeper.coord import peer_auth
from hakeeper.coord.raft import RaftCoordinator
from hakeeper.coord.raft_transport import ROTATION_CHECK
from hakeeper.errors import CoordError
from hakeeper.lab.raft_cluster import RaftCluster


def rotate(*args: str) -> str:
    result = CliRunner().invoke(app, ["secret", "rotate", *args])
    assert result.exit_code == 0, result.output
    return result.output


def hint(output: str) -> list[str]:
    """The command the output tells the operator to run next, as argv after `hakeeper`."""
    lines = [line for line in output.splitlines() if line.startswith("hakeeper ")]
    assert lines, output
    return shlex.split(lines[-1])[1:]


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    write_secret_file(path)
    return path


def test_add_appends_a_secret_that_is_accepted_but_not_proved(secret: Path) -> None:
    before = read_secret_file(secret)
    rotate("add", "--secret-file", str(secret))
    after = read_secret_file(secret)
    assert after.current == before.current
    assert len(after.accepted) == 2


def test_add_from_a_copy_adds_the_same_secret(secret: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.write_bytes(secret.read_bytes())
    other.chmod(0o600)
    rotate("add", "--secret-file", str(secret))
    rotate("add", "--secret-file", str(other), "--from", str(secret))
    assert read_secret_file(other) == read_secret_file(secret)


def test_promote_makes_the_newest_secret_current(secret: Path) -> None:
    rotate("add", "--secret-file", str(secret))
    newest = read_secret_file(secret).accepted[-1]
    rotate("promote", "--secret-file", str(secret))
    after = read_secret_file(secret)
    assert after.current == newest
    assert len(after.accepted) == 2


def test_drop_keeps_only_the_current_secret(secret: Path) -> None:
    rotate("add", "--secret-file", str(secret))
    rotate("promote", "--secret-file", str(secret))
    current = read_secret_file(secret).current
    rotate("drop", "--secret-file", str(secret))
    assert read_secret_file(secret).accepted == (current,)


def test_every_edit_leaves_a_private_file_whatever_the_umask(secret: Path) -> None:
    old = os.umask(0o022)
    try:
        for step in ("add", "promote", "drop"):
            rotate(step, "--secret-file", str(secret))
            assert stat.S_IMODE(secret.stat().st_mode) == 0o600, step
    finally:
        os.umask(old)
    assert [p.name for p in secret.parent.iterdir()] == [secret.name]  # no temporary left


def test_each_printed_hint_runs_as_printed(secret: Path) -> None:
    after_add = rotate("add", "--secret-file", str(secret))
    after_promote = rotate(*hint(after_add)[2:])
    assert hint(after_promote)[:3] == ["secret", "rotate", "drop"]
    rotate(*hint(after_promote)[2:])
    assert len(read_secret_file(secret).accepted) == 1


def test_a_secret_file_others_can_read_is_refused_with_the_fix(secret: Path) -> None:
    secret.chmod(0o644)
    result = CliRunner().invoke(app, ["secret", "rotate", "add", "--secret-file", str(secret)])
    assert result.exit_code == 2
    assert f"chmod 600 {secret}" in result.output


def _refused_by(address: str, secret: bytes) -> bool:
    """True when the member closes a handshake proved with ``secret``."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        mine = peer_auth.new_nonce()
        sock.sendall(peer_auth.hello(mine))
        reply = sock.recv(peer_auth.REPLY_BYTES, socket.MSG_WAITALL)
        theirs = reply[len(peer_auth.MAGIC) : len(peer_auth.MAGIC) + peer_auth.NONCE_BYTES]
        sock.sendall(peer_auth.finish(secret, mine, theirs))
        sock.settimeout(10)
        try:
            return sock.recv(1) == b""
        except ConnectionResetError:
            return True


@pytest.mark.slow
async def test_a_rotation_under_writes_keeps_the_group_writable(tmp_path: Path) -> None:
    cluster = RaftCluster(3, base_dir=tmp_path)
    async with cluster:
        client = await cluster.client()
        files = [*cluster.member_secret_files.values(), cluster.secret_file]
        old = read_secret_file(files[0]).current
        acks: list[float] = []
        failures: list[str] = []
        stop = asyncio.Event()

        async def writer() -> None:
            i = 0
            while not stop.is_set() and i < 2000:  # bounded: ~100 s at one write per 50 ms
                i += 1
                try:
                    await asyncio.wait_for(client.put("/rotate/probe", str(i).encode()), 10)
                    acks.append(time.monotonic())
                except (CoordError, TimeoutError) as exc:
                    failures.append(repr(exc))
                await asyncio.sleep(0.05)

        task = asyncio.create_task(writer())
        settle = ROTATION_CHECK * 4
        try:
            await asyncio.sleep(1.0)
            rotate("add", "--secret-file", str(files[0]))
            for path in files[1:]:
                rotate("add", "--secret-file", str(path), "--from", str(files[0]))
            await asyncio.sleep(settle)
            for path in files:
                rotate("promote", "--secret-file", str(path))
                await asyncio.sleep(settle)
            for path in files:
                rotate("drop", "--secret-file", str(path))
                await asyncio.sleep(settle)
            await asyncio.sleep(2.0)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
        gaps = [b - a for a, b in itertools.pairwise(acks)]
        assert len(acks) > 50
        # A few election timeouts at most (generous): no write stalled longer than that.
        assert max(gaps) < 5 * cluster.timing.election_max, (max(gaps), failures)
        for name in cluster.names:
            assert cluster.running(name), name
        new = read_secret_file(files[0]).current
        assert new != old
        assert all(read_secret_file(path).accepted == (new,) for path in files)
        # The old connections were re-authenticated with the new secret.
        logs = "".join((tmp_path / f"{n}.log").read_text() for n in cluster.names)
        assert "event=raft_peer_reauthenticate" in logs
        # A peer holding only the old secret is refused; one holding the new one is not.
        assert _refused_by(cluster.endpoints[0], old)
        stale = tmp_path / "stale-secret"
        stale.write_bytes(old + b"\n")
        stale.chmod(0o600)
        with pytest.raises(CoordError):
            await RaftCoordinator.open(cluster.endpoints, secret_file=stale, ready_timeout=5)
        await asyncio.wait_for(client.put("/rotate/after", b"done"), 30)


def test_a_hint_names_no_cluster_file_a_command_before_it_used(secret: Path) -> None:
    # One process runs both (as the tests do): `status --config` set the file for its hints.
    CliRunner().invoke(app, ["status", "--config", str(secret.parent / "cluster.toml")])
    after_add = rotate("add", "--secret-file", str(secret))
    assert "--config" not in hint(after_add)
