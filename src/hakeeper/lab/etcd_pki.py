"""A throwaway certificate authority for a lab etcd cluster: one CA, a server certificate per
member (also used for peer traffic) and client certificates, written as PEM files.

Keys are EC P-256 (fast to generate, small) and written mode 0600; certificates are public
and 0644. Everything lives under the lab's base dir and dies with it: this is test
scaffolding, never a production PKI.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=2)
_SKEW = datetime.timedelta(minutes=5)  # a clock a little behind still accepts a fresh cert


@dataclass(frozen=True, slots=True)
class CertPair:
    """A certificate and its private key, as PEM files."""

    cert_file: Path
    key_file: Path


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A bare key pair as PEM files (no certificate), e.g. for signing tokens."""

    public_file: Path
    private_file: Path


@dataclass(frozen=True, slots=True)
class _Issuer:
    name: x509.Name
    key: ec.EllipticCurvePrivateKey


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), mode)  # O_CREAT's mode is masked by the umask
        handle.write(data)


def _write_pair(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> CertPair:
    pair = CertPair(directory / f"{stem}.crt", directory / f"{stem}.key")
    _write(pair.cert_file, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write(pair.key_file, key_pem, 0o600)
    return pair


def _name(common_name: str | None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hakeeper lab")]
    if common_name is not None:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


class LabCA:
    """A self-signed CA written to ``directory/ca.crt``; issues server and client pairs."""

    def __init__(self, directory: Path, common_name: str = "hakeeper lab CA") -> None:
        self.directory = directory
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name(common_name)
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _SKEW)
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        self._issuer = _Issuer(name, key)
        self.pair = _write_pair(directory, "ca", cert, key)

    @property
    def ca_file(self) -> Path:
        return self.pair.cert_file

    def server(self, stem: str, host: str) -> CertPair:
        """A member's certificate for ``host`` (an IP or a DNS name).

        It carries both server and client usage: etcd presents it when it dials its peers
        and when its JSON gateway dials its own gRPC server.
        """
        try:
            alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            alt = x509.DNSName(host)
        usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        return self._issue(stem, f"etcd member {stem}", usages, [alt])

    def client(self, stem: str, common_name: str | None = None) -> CertPair:
        """A client certificate, without a CommonName unless one is given: etcd's JSON
        gateway refuses certificates that carry one (see `hakeeper.coord.etcd_security`)."""
        return self._issue(stem, common_name, [ExtendedKeyUsageOID.CLIENT_AUTH], [])

    def _issue(
        self,
        stem: str,
        common_name: str | None,
        usages: list[x509.ObjectIdentifier],
        alt_names: list[x509.GeneralName],
    ) -> CertPair:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self._issuer.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _SKEW)
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        cert = builder.sign(self._issuer.key, hashes.SHA256())
        return _write_pair(self.directory, stem, cert, key)


def write_signing_key(directory: Path) -> KeyPair:
    """An ES256 key pair for etcd's JWT tokens (the private key mode 0600)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pair = KeyPair(directory / "jwt.pub", directory / "jwt.key")
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write(pair.public_file, public, 0o644)
    _write(pair.private_file, private, 0o600)
    return pair
