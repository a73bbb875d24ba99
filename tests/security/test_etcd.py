"""Hostile clients against a real etcd secured as hakeeper expects it (client certificates on
client and peer ports, auth on, hakeeper's user limited to its cluster's prefix).

Each attack speaks etcd's JSON gateway directly, as an attacker on the network would. Each
test asserts that the attack failed (no key or value came back), that every etcd member is
still running, and that hakeeper's own client still writes and reads afterwards.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from hakeeper.coord.etcd import EtcdCoordinator
from hakeeper.coord.etcd_json import b64, prefix_end
from hakeeper.errors import Unreachable
from hakeeper.lab.etcd_cluster import EtcdCluster
from tests.conftest import require_binary

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

PREFIX = "/hakeeper/lab/"
SECRET_KEY = PREFIX + "config"
SECRET_VALUE = b"fence password=hunter2-in-the-stored-config"
EVERYTHING = {"key": b64(b"\x00"), "range_end": b64(b"\x00")}  # the whole key space
TIMEOUT = aiohttp.ClientTimeout(total=10)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EtcdCluster]:
    require_binary("etcd")
    lab = EtcdCluster(
        3, base_dir=tmp_path_factory.mktemp("etcd-hostile"), tls=True, auth=True, prefix=PREFIX
    )
    try:
        await lab.start()
        owner = await lab.client()
        await owner.put(SECRET_KEY, SECRET_VALUE)
        yield lab
    finally:
        await lab.close()


def tls_context(cluster: EtcdCluster, *, with_certificate: bool) -> ssl.SSLContext:
    """A client context that trusts the cluster's CA, with or without its client certificate."""
    context = ssl.create_default_context(cafile=str(cluster.ca_file))
    if with_certificate:
        assert cluster.cert_file is not None
        assert cluster.key_file is not None
        context.load_cert_chain(str(cluster.cert_file), str(cluster.key_file))
    return context


async def raw_post(
    context: ssl.SSLContext | bool,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    connector = aiohttp.TCPConnector(ssl=context)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session,
        session.post(url, json=body, headers=headers or {}) as response,
    ):
        return response.status, await response.read()


def assert_nothing_leaked(answer: bytes) -> None:
    assert b"kvs" not in answer
    assert b64(SECRET_KEY).encode() not in answer
    assert b64(SECRET_VALUE).encode() not in answer


async def assert_cluster_serves(cluster: EtcdCluster) -> None:
    """Every member still runs, and hakeeper's own client writes and reads."""
    assert all(cluster.running(name) for name in cluster.names)
    coord = await EtcdCoordinator.open(
        cluster.endpoints,
        ca_file=cluster.ca_file,
        cert_file=cluster.cert_file,
        key_file=cluster.key_file,
        user=cluster.user,
        password_file=cluster.password_file,
        scope=PREFIX,
    )
    try:
        await coord.put(PREFIX + "after-attack", b"fine")
        got = await coord.get(SECRET_KEY)
        assert got is not None
        assert got.value == SECRET_VALUE
    finally:
        await coord.close()


async def test_a_client_without_a_certificate_cannot_read(cluster: EtcdCluster) -> None:
    context = tls_context(cluster, with_certificate=False)
    with pytest.raises((aiohttp.ClientError, ssl.SSLError, OSError)):
        await raw_post(context, cluster.endpoints[0] + "/v3/kv/range", EVERYTHING)
    await assert_cluster_serves(cluster)


async def test_plain_http_to_the_tls_port_gets_nothing(cluster: EtcdCluster) -> None:
    url = cluster.endpoints[0].replace("https://", "http://") + "/v3/kv/range"
    try:
        status, answer = await raw_post(False, url, EVERYTHING)
    except (aiohttp.ClientError, OSError):
        pass  # the member dropped the connection: nothing to read either
    else:
        assert status >= 400
        assert_nothing_leaked(answer)
    await assert_cluster_serves(cluster)


async def test_a_certificate_without_a_token_cannot_read(cluster: EtcdCluster) -> None:
    context = tls_context(cluster, with_certificate=True)
    status, answer = await raw_post(context, cluster.endpoints[0] + "/v3/kv/range", EVERYTHING)
    assert status >= 400
    assert b"user name is empty" in answer
    assert_nothing_leaked(answer)
    await assert_cluster_serves(cluster)


async def test_a_forged_token_cannot_read(cluster: EtcdCluster) -> None:
    context = tls_context(cluster, with_certificate=True)
    status, answer = await raw_post(
        context,
        cluster.endpoints[0] + "/v3/kv/range",
        {"key": b64(SECRET_KEY)},
        {"Authorization": "AAAAAAAAAAAAAAAA.1"},
    )
    assert status == 401
    assert b"invalid auth token" in answer
    assert_nothing_leaked(answer)
    await assert_cluster_serves(cluster)


async def test_a_certificate_without_a_token_cannot_watch(cluster: EtcdCluster) -> None:
    context = tls_context(cluster, with_certificate=True)
    prefix = PREFIX.encode()
    create = {"key": b64(prefix), "range_end": b64(prefix_end(prefix)), "start_revision": "1"}
    connector = aiohttp.TCPConnector(ssl=context)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session,
        session.post(
            cluster.endpoints[0] + "/v3/watch", json={"create_request": create}
        ) as response,
    ):
        first = await response.content.readline()
    assert b'"canceled":true' in first
    assert b"user name is empty" in first
    assert_nothing_leaked(first)
    await assert_cluster_serves(cluster)


async def test_a_trusted_certificate_named_root_gets_no_root_rights(
    cluster: EtcdCluster,
) -> None:
    named = cluster.issue_client_certificate("fake-root", common_name="root")
    context = ssl.create_default_context(cafile=str(cluster.ca_file))
    context.load_cert_chain(str(named.cert_file), str(named.key_file))
    status, answer = await raw_post(context, cluster.endpoints[0] + "/v3/kv/range", EVERYTHING)
    assert status == 400  # the gateway refuses a certificate's CommonName as an identity
    assert_nothing_leaked(answer)
    await assert_cluster_serves(cluster)


async def test_hakeepers_own_user_cannot_read_beyond_its_prefix(cluster: EtcdCluster) -> None:
    context = tls_context(cluster, with_certificate=True)
    endpoint = cluster.endpoints[0]
    assert cluster.password_file is not None
    password = cluster.password_file.read_text().splitlines()[0]
    _, auth = await raw_post(
        context, endpoint + "/v3/auth/authenticate", {"name": cluster.user, "password": password}
    )
    token = json.loads(auth)["token"]
    status, answer = await raw_post(
        context, endpoint + "/v3/kv/range", EVERYTHING, {"Authorization": token}
    )
    assert status >= 400
    assert b"permission denied" in answer
    assert_nothing_leaked(answer)
    await assert_cluster_serves(cluster)


# --- a hostile server ------------------------------------------------------------------------


async def test_a_server_streaming_garbage_breaks_no_watch_out_of_its_errors() -> None:
    """An endpoint that answers like etcd but streams non-JSON on a watch (a hijacked or
    broken member): the watch gives up with `Unreachable`, never an internal exception."""
    header = {"cluster_id": "1", "member_id": "1", "revision": "5"}

    async def version(_: web.Request) -> web.Response:
        return web.json_response({"etcdserver": "3.4.23", "etcdcluster": "3.4.0"})

    async def status(_: web.Request) -> web.Response:
        return web.json_response({"header": header})

    async def watch(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"<html>not etcd</html>\n")
        return response

    app = web.Application()
    app.router.add_get("/version", version)
    app.router.add_post("/v3/maintenance/status", status)
    app.router.add_post("/v3/kv/range", status)
    app.router.add_post("/v3/watch", watch)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        coord = await EtcdCoordinator.open(
            [f"http://127.0.0.1:{port}"], watch_reconnect_timeout=1.0
        )
        try:
            async with asyncio.timeout(30):
                with pytest.raises(Unreachable, match="not etcd"):
                    await anext(coord.watch("/p/", 1))
            assert await coord.revision() == 5  # the client still works
        finally:
            await coord.close()
    finally:
        await runner.cleanup()
