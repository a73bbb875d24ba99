"""The etcd backend against a real etcd secured as in production: every member requires a
client certificate (client and peer ports), auth is on, and hakeeper's user may touch only
the prefix ``/hakeeper/lab/``. The whole contract suite also runs on such a cluster
(``etcd-secure`` in tests/coord/conftest.py); this file holds what only a secured etcd shows.

One cluster serves the module (the tests do not change its members or its users); its tokens
live two seconds unused, so the renewal of expired tokens runs under every test here.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from hakeeper.coord.base import Cmp, Put
from hakeeper.coord.etcd import EtcdCoordinator
from hakeeper.errors import ConfigError, CoordError
from hakeeper.lab.etcd_cluster import EtcdCluster
from hakeeper.lab.etcd_pki import CertPair, LabCA
from hakeeper.model.cluster import ClusterOptions, ClusterSpec, Coordination
from hakeeper.runtime.connect import open_coordinator
from tests.conftest import require_binary

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

PREFIX = "/hakeeper/lab/"
TOKEN_TTL = 2  # seconds a token lives unused (etcd's --auth-token-ttl)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EtcdCluster]:
    require_binary("etcd")
    base = tmp_path_factory.mktemp("etcd-secure")
    lab = EtcdCluster(
        3, base_dir=base, tls=True, auth=True, prefix=PREFIX, auth_token_ttl=TOKEN_TTL
    )
    try:
        await lab.start()
        yield lab
    finally:
        await lab.close()


@pytest.fixture(scope="module")
def foreign_ca(tmp_path_factory: pytest.TempPathFactory) -> LabCA:
    """A CA the cluster does not trust, with a client certificate of its own."""
    return LabCA(tmp_path_factory.mktemp("foreign-ca"))


def options(cluster: EtcdCluster, **overrides: Any) -> dict[str, Any]:
    """What a node of this cluster connects with, with ``overrides`` replacing some of it."""
    base: dict[str, Any] = {
        "ca_file": cluster.ca_file,
        "cert_file": cluster.cert_file,
        "key_file": cluster.key_file,
        "user": cluster.user,
        "password_file": cluster.password_file,
        "scope": PREFIX,
        "request_timeout": 5.0,
    }
    return {**base, **overrides}


async def connect_error(cluster: EtcdCluster, **overrides: Any) -> ConfigError:
    """The error a connect with these settings raises (within a bound: never a hang)."""
    try:
        async with asyncio.timeout(30):
            coord = await EtcdCoordinator.open(cluster.endpoints, **options(cluster, **overrides))
    except ConfigError as exc:
        return exc
    await coord.close()
    pytest.fail(f"connected with {sorted(overrides)} replaced; a ConfigError was expected")


def password_of(cluster: EtcdCluster) -> str:
    assert cluster.password_file is not None
    return cluster.password_file.read_text().splitlines()[0]


def write_password(path: Path, password: str) -> Path:
    path.write_text(password + "\n")
    os.chmod(path, 0o600)
    return path


@pytest_asyncio.fixture(loop_scope="module")
async def coord(cluster: EtcdCluster) -> AsyncIterator[EtcdCoordinator]:
    client = await EtcdCoordinator.open(cluster.endpoints, **options(cluster))
    try:
        yield client
    finally:
        await client.close()


# --- the user's own prefix ------------------------------------------------------------------


async def test_the_user_reads_and_writes_its_prefix_over_mtls(coord: EtcdCoordinator) -> None:
    revision = await coord.put(PREFIX + "a", b"1")
    result = await coord.txn(
        [Cmp(PREFIX + "b", "create_revision", "==", 0)], [Put(PREFIX + "b", b"2")]
    )
    got = await coord.range(PREFIX)
    assert result.succeeded
    assert [(kv.key, kv.value) for kv in got][:2] == [(PREFIX + "a", b"1"), (PREFIX + "b", b"2")]
    assert await coord.revision() >= revision
    assert await coord.has_quorum()
    await coord.delete(PREFIX, prefix=True)


async def test_a_lease_and_its_key_under_the_prefix(coord: EtcdCoordinator) -> None:
    lease = await coord.grant(coord.min_ttl + 1)
    await coord.put(PREFIX + "member", b"alive", lease)
    assert await coord.keepalive(lease)
    await coord.revoke(lease)
    assert await coord.get(PREFIX + "member") is None


async def test_a_watch_on_the_prefix_sees_a_write(coord: EtcdCoordinator) -> None:
    start = await coord.revision() + 1
    watch = coord.watch(PREFIX, start)
    await coord.put(PREFIX + "watched", b"w")
    async with asyncio.timeout(20):
        event = await anext(watch)
    await watch.aclose()
    assert (event.type, event.kv.key, event.kv.value) == ("put", PREFIX + "watched", b"w")


async def test_open_coordinator_passes_the_clusters_tls_user_and_prefix(
    cluster: EtcdCluster,
) -> None:
    coordination = Coordination(
        backend="etcd",
        endpoints=tuple(cluster.endpoints),
        ca_file=str(cluster.ca_file),
        cert_file=str(cluster.cert_file),
        key_file=str(cluster.key_file),
        user=cluster.user,
        password_file=str(cluster.password_file),
    )
    spec = ClusterSpec(options=ClusterOptions(name="lab"), coordination=coordination)
    coord = await open_coordinator(spec)
    try:
        assert await coord.put(PREFIX + "from-spec", b"1") > 0
        assert await coord.has_quorum()  # reads the prefix, which the user may
    finally:
        await coord.close()


# --- outside the prefix ---------------------------------------------------------------------


async def test_reading_outside_the_prefix_is_refused_with_the_fix(coord: EtcdCoordinator) -> None:
    with pytest.raises(CoordError, match="permission denied") as caught:
        await coord.get("/other-cluster/config")
    assert f"readwrite {PREFIX}" in str(caught.value)
    assert "hakeeper" in str(caught.value)  # the user it concerns


async def test_writing_outside_the_prefix_is_refused(coord: EtcdCoordinator) -> None:
    with pytest.raises(CoordError, match="permission denied"):
        await coord.put("/other-cluster/assignments/x", b"stolen")
    with pytest.raises(CoordError, match="permission denied"):
        await coord.delete("/", prefix=True)


async def test_watching_outside_the_prefix_is_refused(coord: EtcdCoordinator) -> None:
    watch = coord.watch("/other-cluster/", 1)
    async with asyncio.timeout(20):
        with pytest.raises(CoordError, match="permission denied"):
            await anext(watch)
    await watch.aclose()


async def test_a_scope_the_user_may_not_read_fails_at_connect(cluster: EtcdCluster) -> None:
    error = await connect_error(cluster, scope="/hakeeper/other/")
    assert "permission denied" in str(error)
    assert "grant-permission" in str(error)


# --- tokens ----------------------------------------------------------------------------------


async def test_an_expired_token_is_renewed_and_the_request_succeeds(
    coord: EtcdCoordinator,
) -> None:
    await coord.put(PREFIX + "before", b"1")
    before = coord.authentications
    await asyncio.sleep(TOKEN_TTL * 2 + 1)  # unused for longer than etcd keeps the token

    assert await coord.put(PREFIX + "after", b"2") > 0
    assert coord.authentications == before + 1


async def test_a_watch_created_after_the_token_expired_still_starts(
    coord: EtcdCoordinator,
) -> None:
    start = await coord.revision() + 1
    before = coord.authentications
    await asyncio.sleep(TOKEN_TTL * 2 + 1)
    watch = coord.watch(PREFIX, start)
    async with asyncio.timeout(30):
        first = asyncio.create_task(anext(watch))
        await asyncio.sleep(1)  # the watch is created (on a renewed token) before the write
        await coord.put(PREFIX + "late", b"x")
        event = await first
    await watch.aclose()
    assert event.kv.key == PREFIX + "late"
    assert coord.authentications > before


async def test_an_expired_jwt_is_renewed_and_the_request_succeeds(tmp_path: Path) -> None:
    """etcd's JWT tokens (its production choice) expire by age even when used, and are
    refused the same way as an expired simple token."""
    async with EtcdCluster(
        1, base_dir=tmp_path / "jwt", auth=True, prefix=PREFIX, auth_token_ttl=TOKEN_TTL, jwt=True
    ) as lab:
        client = await lab.client()
        await client.put(PREFIX + "jwt", b"1")
        before = client.authentications  # counted here: a slow start may renew already
        await asyncio.sleep(TOKEN_TTL * 2 + 1)

        assert await client.put(PREFIX + "jwt", b"2") > 0
        assert client.authentications == before + 1


async def test_concurrent_requests_on_an_expired_token_authenticate_once(
    coord: EtcdCoordinator,
) -> None:
    await coord.put(PREFIX + "shared", b"1")
    before = coord.authentications
    await asyncio.sleep(TOKEN_TTL * 2 + 1)

    async with asyncio.timeout(30):
        got = await asyncio.gather(*(coord.get(PREFIX + "shared") for _ in range(20)))
    assert all(kv is not None and kv.value == b"1" for kv in got)
    assert coord.authentications == before + 1


async def test_a_password_that_stopped_working_is_a_coord_error_at_renewal(
    cluster: EtcdCluster, tmp_path: Path
) -> None:
    password = write_password(tmp_path / "pw", password_of(cluster))
    client = await EtcdCoordinator.open(
        cluster.endpoints, **options(cluster, password_file=password)
    )
    try:
        write_password(password, "a-password-etcd-does-not-know")
        await asyncio.sleep(TOKEN_TTL * 2 + 1)
        with pytest.raises(CoordError, match="could not authenticate") as caught:
            await client.get(PREFIX + "x")
    finally:
        await client.close()
    assert not isinstance(caught.value, ConfigError)
    assert "a-password-etcd-does-not-know" not in str(caught.value)
    assert str(password) in str(caught.value)


# --- certificate renewal ---------------------------------------------------------------------


def install(pair: CertPair, cert: Path, key: Path) -> None:
    """Put a certificate and key in place the way a renewal tool does: write, then rename."""
    for source, target, mode in ((pair.cert_file, cert, 0o644), (pair.key_file, key, 0o600)):
        staged = target.with_suffix(".new")
        staged.write_bytes(source.read_bytes())
        os.chmod(staged, mode)
        os.replace(staged, target)


async def until_get(coord: EtcdCoordinator, key: str, *, failing_with: str | None) -> None:
    """Read ``key`` until it succeeds (``failing_with`` None) or fails with that text."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    last = ""
    while loop.time() < deadline:
        try:
            await coord.get(key)
        except CoordError as exc:
            last = str(exc)
            if failing_with is not None and failing_with in last:
                return
        else:
            if failing_with is None:
                return
        await asyncio.sleep(0.2)
    pytest.fail(f"no {'success' if failing_with is None else failing_with!r} in 30s: {last}")


async def until_certificate_problem(coord: EtcdCoordinator, key: str) -> str:
    """Read ``key`` (every read must succeed) until the coordinator names a certificate problem."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while loop.time() < deadline:
        await coord.get(key)
        if coord.certificate_problem is not None:
            return coord.certificate_problem
        await asyncio.sleep(0.2)
    pytest.fail("the mismatched pair on disk was never named a problem in 30s")


async def test_a_client_certificate_renewed_on_disk_is_used_without_a_restart(
    tmp_path: Path, foreign_ca: LabCA
) -> None:
    async with EtcdCluster(1, base_dir=tmp_path / "renew", tls=True) as lab:
        cert, key = tmp_path / "client.crt", tmp_path / "client.key"
        install(lab.issue_client_certificate("first"), cert, key)
        coord = await EtcdCoordinator.open(
            lab.endpoints, ca_file=lab.ca_file, cert_file=cert, key_file=key
        )
        try:
            await coord.put("/renew", b"1")
            # A certificate etcd does not trust, so its use shows. No etcd restart: the
            # connection pooled with the first pair must not carry requests after the renewal
            # (it did, and a renewal etcd refuses stayed hidden until etcd's next restart).
            install(foreign_ca.client("untrusted"), cert, key)
            await until_get(coord, "/renew", failing_with="refused the client certificate")

            install(lab.issue_client_certificate("renewed"), cert, key)
            await until_get(coord, "/renew", failing_with=None)
            assert coord.certificate_problem is None
        finally:
            await coord.close()


async def test_a_renewed_pair_that_does_not_match_keeps_the_old_one(tmp_path: Path) -> None:
    async with EtcdCluster(1, base_dir=tmp_path / "mismatch", tls=True) as lab:
        cert, key = tmp_path / "client.crt", tmp_path / "client.key"
        install(lab.issue_client_certificate("current"), cert, key)
        coord = await EtcdCoordinator.open(
            lab.endpoints, ca_file=lab.ca_file, cert_file=cert, key_file=key
        )
        try:
            first, second = (lab.issue_client_certificate(n) for n in ("a", "b"))
            install(CertPair(first.cert_file, second.key_file), cert, key)  # mid-renewal
            await lab.restart(lab.names[0])  # the next request makes a new handshake
            await until_get(coord, "/any", failing_with=None)  # with the previous pair

            # The files are looked at once a second at most, so the restart may be over
            # before the first look: read on (each read succeeds) until the pair is judged.
            problem = await until_certificate_problem(coord, "/any")
            assert "not a usable client certificate" in problem
        finally:
            await coord.close()


# --- wrong credentials fail at start, clearly -----------------------------------------------


async def test_a_wrong_ca_fails_at_connect(cluster: EtcdCluster, foreign_ca: LabCA) -> None:
    error = await connect_error(cluster, ca_file=foreign_ca.ca_file)
    assert "does not verify against ca_file" in str(error)
    assert str(foreign_ca.ca_file) in str(error)


async def test_no_client_certificate_fails_at_connect(cluster: EtcdCluster) -> None:
    error = await connect_error(cluster, cert_file=None, key_file=None)
    assert "requires a client certificate" in str(error)
    assert "set cert_file and key_file" in str(error)


async def test_a_client_certificate_of_another_ca_fails_at_connect(
    cluster: EtcdCluster, foreign_ca: LabCA
) -> None:
    pair = foreign_ca.client("stranger")
    error = await connect_error(cluster, cert_file=pair.cert_file, key_file=pair.key_file)
    assert f"refused the client certificate {pair.cert_file}" in str(error)
    assert "--trusted-ca-file" in str(error)


async def test_a_client_certificate_with_a_common_name_fails_at_connect(
    cluster: EtcdCluster,
) -> None:
    trusted = cluster.issue_client_certificate("named", common_name="hakeeper")
    error = await connect_error(cluster, cert_file=trusted.cert_file, key_file=trusted.key_file)
    assert "without a CN" in str(error)


async def test_a_wrong_password_fails_at_connect_without_showing_it(
    cluster: EtcdCluster, tmp_path: Path
) -> None:
    wrong = "not-the-password-" + "x" * 8
    error = await connect_error(cluster, password_file=write_password(tmp_path / "wrong", wrong))
    assert "could not authenticate" in str(error)
    assert str(tmp_path / "wrong") in str(error)
    assert wrong not in str(error)
    assert password_of(cluster) not in str(error)


async def test_an_unknown_user_fails_at_connect(cluster: EtcdCluster) -> None:
    error = await connect_error(cluster, user="ghost")
    assert "user 'ghost' could not authenticate" in str(error)
    assert password_of(cluster) not in str(error)


async def test_no_user_on_an_etcd_with_auth_fails_at_connect(cluster: EtcdCluster) -> None:
    error = await connect_error(cluster, user=None, password_file=None)
    assert "authentication is enabled" in str(error)
    assert "set [coordination] user and password_file" in str(error)


async def test_a_password_file_others_can_read_is_refused(
    cluster: EtcdCluster, tmp_path: Path
) -> None:
    loose = write_password(tmp_path / "loose", password_of(cluster))
    os.chmod(loose, 0o644)
    error = await connect_error(cluster, password_file=loose)
    assert "chmod 600" in str(error)
    assert password_of(cluster) not in str(error)


async def test_the_cluster_still_serves_after_the_failed_attempts(
    coord: EtcdCoordinator,
) -> None:
    assert await coord.put(PREFIX + "still", b"ok") > 0
