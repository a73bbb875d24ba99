"""The API over TLS: a client certificate the configured CA signed names its caller (its CN,
with the role ``client_certs`` gives); an unknown CN is refused; a certificate of another CA
does not get through the handshake; a token works over the same port."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from hakeeper.lab.etcd_pki import LabCA
from hakeeper.model.cluster import ClusterSpec
from hakeeper.model.events import OperatorAction
from hakeeper.runtime.store import ClusterStore
from tests.api.conftest import TOKENS, Served, api_section, served
from tests.cli.conftest import KEYS, online
from tests.fakes import LocalCoordinator

MOVE = "/v1/resources/vip/move"


@dataclass
class Pki:
    ca: LabCA
    other: LabCA


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(LabCA(tmp_path / "ca"), LabCA(tmp_path / "other", "another CA"))


@pytest.fixture
async def api(
    coord: LocalCoordinator, store: ClusterStore, spec: ClusterSpec, pki: Pki
) -> AsyncIterator[Served]:
    server = pki.ca.server("api", "127.0.0.1")
    section = api_section(
        tls_cert_file=str(server.cert_file),
        tls_key_file=str(server.key_file),
        client_ca_file=str(pki.ca.ca_file),
        client_certs={"ops.example": "operate"},
    )
    await online(coord, "n1", "n2", "n3")
    async with served(coord, store, spec, section) as box:
        yield box


def client_context(pki: Pki, issuer: LabCA | None, cn: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca.ca_file))
    if issuer is not None:
        pair = issuer.client(cn.replace(".", "-"), cn)
        context.load_cert_chain(str(pair.cert_file), str(pair.key_file))
    return context


async def post(api: Served, context: ssl.SSLContext, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {TOKENS[token]}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.post(api.url + MOVE, json={"node": "n2"}, headers=headers, ssl=context) as r,
    ):
        return r.status


async def test_a_client_certificate_names_its_caller_and_gives_its_role(
    api: Served, pki: Pki, store: ClusterStore
) -> None:
    assert await post(api, client_context(pki, pki.ca, "ops.example")) == 200
    actions = [e for e in await store.event_log("t").read() if isinstance(e, OperatorAction)]
    assert [a.actor for a in actions] == ["ops.example"]


async def test_a_certificate_whose_cn_has_no_role_is_refused(
    api: Served, pki: Pki, coord: LocalCoordinator
) -> None:
    assert await post(api, client_context(pki, pki.ca, "stranger.example")) == 401
    assert await coord.range(KEYS.constraints) == []


async def test_a_certificate_of_another_ca_does_not_get_through(
    api: Served, pki: Pki, coord: LocalCoordinator
) -> None:
    with pytest.raises(aiohttp.ClientError):
        await post(api, client_context(pki, pki.other, "ops.example"))
    assert await coord.range(KEYS.constraints) == []
    assert await post(api, client_context(pki, pki.ca, "ops.example")) == 200


async def test_a_token_works_over_tls_without_a_certificate(api: Served, pki: Pki) -> None:
    assert await post(api, client_context(pki, None, ""), token="operator") == 200
    assert await post(api, client_context(pki, None, "")) == 401
