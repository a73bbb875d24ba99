"""TLS on the peer link, optional: the stream, forwarding and control encrypted.

Both sides present a certificate signed by the cluster's CA and verify the other's (mutual
TLS); the secret's HMAC handshake still runs inside, so a certificate alone admits nobody.
Host names are not checked: nodes are addressed by IP, and membership is what the secret
and the CA prove. The key file must be mode 0600, like every secret.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from hakeeper.config.secret_file import mode_problem
from hakeeper.errors import ConfigError


@dataclass(frozen=True, slots=True)
class PeerTls:
    cert_file: Path
    key_file: Path
    ca_file: Path

    def server_context(self) -> ssl.SSLContext:
        return self._context(ssl.Purpose.CLIENT_AUTH)

    def client_context(self) -> ssl.SSLContext:
        return self._context(ssl.Purpose.SERVER_AUTH)

    def _context(self, purpose: ssl.Purpose) -> ssl.SSLContext:
        try:
            problem = mode_problem(self.key_file, os.stat(self.key_file))
        except OSError as exc:
            raise ConfigError(f"{self.key_file}: cannot read the TLS key ({exc.strerror})") from exc
        if problem is not None:
            raise ConfigError(problem)
        try:
            context = ssl.create_default_context(purpose, cafile=str(self.ca_file))
            context.load_cert_chain(str(self.cert_file), str(self.key_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"peer TLS: cannot load {self.cert_file}, {self.key_file} or {self.ca_file} "
                f"({exc}); give a PEM certificate signed by the PEM CA and its key"
            ) from exc
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = False
        context.verify_mode = ssl.CERT_REQUIRED
        return context


def peer_tls(cert: Path | None, key: Path | None, ca: Path | None) -> PeerTls | None:
    """The three options together, or none of them."""
    given = [option for option in (cert, key, ca) if option is not None]
    if not given:
        return None
    if cert is None or key is None or ca is None:
        raise ConfigError(
            "peer TLS needs --peer-tls-cert, --peer-tls-key and --peer-tls-ca together"
        )
    return PeerTls(cert, key, ca)
