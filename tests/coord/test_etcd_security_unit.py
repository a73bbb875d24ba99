"""etcd TLS and credential settings, without a server: what is refused at construction, and
what `insecure_settings` reports for `hakeeper check`."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import pytest

from hakeeper.coord.etcd import EtcdCoordinator
from hakeeper.coord.etcd_security import EtcdSecurity, insecure_settings
from hakeeper.coord.etcd_transport import token_refused
from hakeeper.errors import ConfigError
from hakeeper.lab.etcd_pki import CertPair, LabCA
from hakeeper.model.cluster import Coordination

HTTPS = ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
SECRET = "s3cret-password-for-etcd"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LabCA:
    return LabCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def client_pair(ca: LabCA) -> CertPair:
    return ca.client("client")


def secret_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


def secure(ca: LabCA, pair: CertPair, password_file: Path) -> Coordination:
    return Coordination(
        backend="etcd",
        endpoints=tuple(HTTPS),
        ca_file=str(ca.ca_file),
        cert_file=str(pair.cert_file),
        key_file=str(pair.key_file),
        user="hakeeper",
        password_file=str(password_file),
    )


# --- refused at construction ----------------------------------------------------------------


def test_a_client_certificate_with_http_endpoints_is_refused(client_pair: CertPair) -> None:
    with pytest.raises(ConfigError, match="https://host:port"):
        EtcdCoordinator(
            ["http://10.0.0.1:2379"], cert_file=client_pair.cert_file, key_file=client_pair.key_file
        )


def test_a_ca_file_with_http_endpoints_is_refused(ca: LabCA) -> None:
    with pytest.raises(ConfigError, match="no TLS would be used"):
        EtcdCoordinator(["http://10.0.0.1:2379"], ca_file=ca.ca_file)


def test_mixed_http_and_https_endpoints_are_refused() -> None:
    with pytest.raises(ConfigError, match="mix http and https"):
        EtcdCoordinator(["http://10.0.0.1:2379", "https://10.0.0.2:2379"])


def test_a_certificate_without_its_key_is_refused(client_pair: CertPair) -> None:
    with pytest.raises(ConfigError, match="cert_file and key_file go together"):
        EtcdCoordinator(HTTPS, cert_file=client_pair.cert_file)


def test_a_user_without_a_password_file_is_refused() -> None:
    with pytest.raises(ConfigError, match="user and password_file go together"):
        EtcdCoordinator(HTTPS, user="hakeeper")


def test_a_missing_ca_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"ca_file {tmp_path / 'none.crt'} does not exist"):
        EtcdCoordinator(HTTPS, ca_file=tmp_path / "none.crt")


def test_a_ca_file_that_is_not_pem_is_named(tmp_path: Path) -> None:
    junk = secret_file(tmp_path / "junk.crt", "not a certificate\n", 0o644)
    with pytest.raises(ConfigError, match="is not a PEM CA certificate"):
        EtcdCoordinator(HTTPS, ca_file=junk)


def test_a_key_file_others_can_read_is_refused(ca: LabCA, tmp_path: Path) -> None:
    pair = ca.client("loose")
    os.chmod(pair.key_file, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        EtcdCoordinator(HTTPS, ca_file=ca.ca_file, cert_file=pair.cert_file, key_file=pair.key_file)


def test_a_key_that_is_not_the_certificates_is_refused(ca: LabCA) -> None:
    first, second = ca.client("first"), ca.client("second")
    with pytest.raises(ConfigError, match="not a usable client certificate"):
        EtcdCoordinator(HTTPS, cert_file=first.cert_file, key_file=second.key_file)


def test_a_password_file_others_can_read_is_refused_without_its_content(tmp_path: Path) -> None:
    path = secret_file(tmp_path / "pw", SECRET + "\n", 0o640)
    with pytest.raises(ConfigError, match="chmod 600") as caught:
        EtcdCoordinator(HTTPS, user="hakeeper", password_file=path)
    assert SECRET not in str(caught.value)


def test_a_missing_password_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"password_file {tmp_path / 'pw'} does not exist"):
        EtcdCoordinator(HTTPS, user="hakeeper", password_file=tmp_path / "pw")


def test_an_empty_first_line_is_no_password(tmp_path: Path) -> None:
    path = secret_file(tmp_path / "pw", "\n" + SECRET + "\n")
    with pytest.raises(ConfigError, match="no password on its first line"):
        EtcdCoordinator(HTTPS, user="hakeeper", password_file=path)


def test_the_password_is_the_first_line_only(tmp_path: Path) -> None:
    path = secret_file(tmp_path / "pw", SECRET + "\nsecond line\n")
    assert EtcdSecurity(user="hakeeper", password_file=path).password() == SECRET


def test_a_secure_configuration_is_accepted(
    ca: LabCA, client_pair: CertPair, tmp_path: Path
) -> None:
    config = secure(ca, client_pair, secret_file(tmp_path / "pw", SECRET))
    coord = EtcdCoordinator(HTTPS, **_kwargs(config))
    assert coord.endpoints == HTTPS


def _kwargs(config: Coordination) -> dict[str, str | None]:
    return {
        "ca_file": config.ca_file,
        "cert_file": config.cert_file,
        "key_file": config.key_file,
        "user": config.user,
        "password_file": config.password_file,
    }


async def test_an_https_endpoint_that_speaks_plain_http_is_named(ca: LabCA) -> None:
    async def plain_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            await reader.read(1024)
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(plain_http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(30):
            with pytest.raises(ConfigError, match="does not speak TLS"):
                await EtcdCoordinator.open([f"https://127.0.0.1:{port}"], ca_file=ca.ca_file)
    finally:
        server.close()
        await server.wait_closed()


# --- tokens ------------------------------------------------------------------------------------


def test_expired_and_stale_tokens_are_renewed_but_a_denial_is_not() -> None:
    assert token_refused("etcdserver: invalid auth token")
    assert token_refused("rpc error: code = Unauthenticated desc = etcdserver: invalid auth token")
    assert token_refused("etcdserver: revision of auth store is old")
    assert not token_refused("etcdserver: permission denied")
    assert not token_refused("etcdserver: user name is empty")


# --- hakeeper check ----------------------------------------------------------------------------


def test_raft_has_no_etcd_problems() -> None:
    assert insecure_settings(Coordination()) == []


def test_plain_http_on_loopback_is_no_problem() -> None:
    local = Coordination(backend="etcd", endpoints=("http://127.0.0.1:2379",))
    assert insecure_settings(local) == []


def test_plain_http_to_another_host_is_named_with_its_fix() -> None:
    problems = insecure_settings(
        Coordination(backend="etcd", endpoints=("http://10.0.0.1:2379", "http://127.0.0.1:2379"))
    )
    assert any("http://10.0.0.1:2379 use http (no TLS)" in p for p in problems)
    assert all("127.0.0.1" not in p for p in problems)
    assert any("--client-cert-auth" in p for p in problems)


def test_https_without_client_certificate_or_user_names_both() -> None:
    problems = insecure_settings(Coordination(backend="etcd", endpoints=tuple(HTTPS)))
    assert len(problems) == 2
    assert "no client certificate" in problems[0]
    assert "no user" in problems[1]
    assert "etcdctl auth enable" in problems[1]


def test_key_and_password_files_others_can_read_are_named(ca: LabCA, tmp_path: Path) -> None:
    pair = ca.client("readable")
    os.chmod(pair.key_file, 0o644)
    password = secret_file(tmp_path / "pw", SECRET, 0o604)
    problems = insecure_settings(secure(ca, pair, password))
    assert [p.split(":")[1].strip() for p in problems] == [
        "key_file " + str(pair.key_file),
        "password_file " + str(password),
    ]
    assert all("chmod 600" in p for p in problems)
    assert all(SECRET not in p for p in problems)


def test_a_secure_configuration_has_no_problems(
    ca: LabCA, client_pair: CertPair, tmp_path: Path
) -> None:
    config = secure(ca, client_pair, secret_file(tmp_path / "pw", SECRET))
    assert insecure_settings(config) == []
