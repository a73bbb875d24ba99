"""How hakeeper proves itself to a production etcd and checks that etcd is the real one.

Three independent pieces, all optional, each named by a file path in ``[coordination]``:

- ``ca_file``: the CA that signed the members' server certificates (https endpoints). Without
  it an https endpoint is checked against the system CA store.
- ``cert_file`` + ``key_file``: a client certificate, for members started with
  ``--client-cert-auth``. etcd's JSON gateway (3.4.10+) refuses a client certificate that
  carries a CommonName, since the gateway would not pass that name on as the user: issue it
  without a CN (subject alternative names only) and name the etcd user with ``user``.
- ``user`` + ``password_file``: an etcd user (RBAC). The password is the file's first line;
  the file must be mode 0600 like every secret. The token etcd returns is sent on every
  request and renewed when etcd says it expired.

Nothing here logs or formats a password or a token: errors name the file, never its content.
`insecure_settings` names, with the fix, what ``hakeeper check`` should report.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from hakeeper.config.secret_file import mode_problem, read_private_file
from hakeeper.errors import ConfigError
from hakeeper.model.cluster import Coordination

# Alerts and errors of a handshake the two sides could not complete: the request never
# reached etcd, so they are configuration problems. Other ssl errors (a connection cut
# mid-answer) are transport failures whose request may have been applied.
_HANDSHAKE_REFUSALS = (
    "CERTIFICATE",
    "UNKNOWN_CA",
    "HANDSHAKE_FAILURE",
    "PROTOCOL_VERSION",
    "UNSUPPORTED_PROTOCOL",
    "NO_SHARED_CIPHER",
    "NO_CIPHERS",
)
_PASSWORD_MAX = 4096
"""etcd itself has no limit, but a password file larger than this is not a password file."""


@dataclass(frozen=True, slots=True)
class EtcdSecurity:
    """The TLS and authentication settings of one etcd client (all paths absolute)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    user: str | None = None
    password_file: Path | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigError(
                "etcd: cert_file and key_file go together (the client certificate and its "
                "key): set both or neither"
            )
        if (self.user is None) != (self.password_file is None):
            raise ConfigError(
                "etcd: user and password_file go together (the etcd user and the file "
                "holding its password): set both or neither"
            )

    @classmethod
    def from_coordination(cls, coordination: Coordination) -> EtcdSecurity:
        def path(value: str | None) -> Path | None:
            return Path(value) if value is not None else None

        return cls(
            ca_file=path(coordination.ca_file),
            cert_file=path(coordination.cert_file),
            key_file=path(coordination.key_file),
            user=coordination.user,
            password_file=path(coordination.password_file),
        )

    @property
    def uses_tls_files(self) -> bool:
        return self.ca_file is not None or self.cert_file is not None

    def check_endpoints(self, endpoints: list[str]) -> bool:
        """True if the endpoints are https; `ConfigError` for a mix, or TLS files with http."""
        schemes = {urlsplit(url).scheme for url in endpoints}
        if len(schemes) > 1:
            raise ConfigError(
                f"etcd: endpoints mix http and https ({', '.join(endpoints)}): a cluster "
                "serves one or the other; list every member with the same scheme"
            )
        https = schemes == {"https"}
        if not https and self.uses_tls_files:
            raise ConfigError(
                "etcd: ca_file or cert_file is set but the endpoints are http://, so no TLS "
                "would be used: write the endpoints as https://host:port (etcd started with "
                "--cert-file/--key-file), or drop ca_file, cert_file and key_file"
            )
        return https

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context: verify the server (ca_file or the system store, host name
        included), present the client certificate if one is set."""
        cafile = str(self.ca_file) if self.ca_file is not None else None
        try:
            context = ssl.create_default_context(cafile=cafile)
        except FileNotFoundError:
            raise ConfigError(f"etcd: ca_file {self.ca_file} does not exist") from None
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"etcd: ca_file {self.ca_file} is not a PEM CA certificate ({_reason(exc)}): "
                "give the CA that signed the etcd members' server certificates"
            ) from None
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.load_client_certificate(context)
        return context

    def load_client_certificate(self, context: ssl.SSLContext) -> None:
        """Load ``cert_file`` and ``key_file`` into ``context`` (nothing if unset)."""
        if self.cert_file is None or self.key_file is None:
            return
        _check_key_mode(self.key_file)
        try:
            context.load_cert_chain(str(self.cert_file), str(self.key_file))
        except FileNotFoundError as exc:
            raise ConfigError(f"etcd: {exc.filename} does not exist") from None
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"etcd: cert_file {self.cert_file} with key_file {self.key_file} is not a "
                f"usable client certificate ({_reason(exc)}): give the PEM certificate and "
                "its own private key"
            ) from None

    def password(self) -> str:
        """The first line of ``password_file`` (re-read on every call, so a changed password
        takes effect at the next authentication). `ConfigError` if unusable."""
        path = self.password_file
        if path is None:
            raise ConfigError("etcd: no password_file is configured")
        try:
            data = read_private_file(
                path,
                _PASSWORD_MAX + 1,
                missing=f"{path} does not exist: write the etcd user's password into it as "
                "its first line, mode 0600",
            )
        except ConfigError as exc:
            raise ConfigError(f"etcd: password_file {exc}") from None
        if len(data) > _PASSWORD_MAX:
            raise ConfigError(
                f"etcd: password_file {path} is over {_PASSWORD_MAX} bytes: it must hold "
                "only the password, on its first line"
            )
        try:
            lines = data.decode("utf-8").splitlines()
        except UnicodeDecodeError:
            raise ConfigError(f"etcd: password_file {path} is not UTF-8 text") from None
        if not lines or not lines[0]:
            raise ConfigError(
                f"etcd: password_file {path} has no password on its first line: write the "
                "etcd user's password there"
            )
        return lines[0]


class CertificateReloader:
    """Keeps the client certificate in step with its files, so a renewed certificate is used
    from the next request on, without a restart.

    The files are looked at (two ``stat`` calls) at most every `RECHECK` seconds. A changed
    pair is loaded into a new context, which becomes `context`: aiohttp pools connections per
    TLS context, so no connection made with the previous pair is reused by a new request and
    a renewal etcd does not trust shows at once, not weeks later when etcd restarts. (Idle
    connections of the old context close after the pool's keep-alive; a watch on one lasts
    until it reconnects.) A pair caught half-written, with a key that does not match yet, or
    with a key others can read, leaves the old context in use and is named in ``problem``
    until the files are mended.
    """

    RECHECK = 1.0

    def __init__(self, security: EtcdSecurity, context: ssl.SSLContext) -> None:
        self._security = security
        self.context = context
        self._stamp = self._read_stamp()
        self._next_check = time.monotonic() + self.RECHECK
        self.problem: str | None = None

    def _read_stamp(self) -> tuple[int, ...] | None:
        paths = (self._security.cert_file, self._security.key_file)
        try:
            stats = [os.stat(path) for path in paths if path is not None]
        except OSError:
            return None
        return tuple(v for st in stats for v in (st.st_ino, st.st_size, st.st_mtime_ns))

    def refresh(self) -> ssl.SSLContext:
        """The context for the next request, rebuilt first if the files changed."""
        now = time.monotonic()
        if now < self._next_check:
            return self.context
        self._next_check = now + self.RECHECK
        stamp = self._read_stamp()
        if stamp is None or stamp == self._stamp:
            return self.context
        self._stamp = stamp
        try:
            self.context = self._security.ssl_context()
        except ConfigError as exc:
            self.problem = f"{exc} (the previous certificate stays in use)"
        else:
            self.problem = None
        return self.context


def _check_key_mode(path: Path) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(f"etcd: key_file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"etcd: cannot read key_file {path} ({exc.strerror})") from None
    problem = mode_problem(path, st)
    if problem is not None:
        raise ConfigError(f"etcd: key_file {problem}")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and getattr(exc, "reason", None):
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


def tls_failure(exc: BaseException, security: EtcdSecurity) -> str | None:
    """What a TLS handshake failure means and its fix, or None if ``exc`` is no TLS failure.

    A server certificate our CA did not sign fails here; a client certificate the server
    refuses arrives as an alert from the server (with TLS 1.3, only on the first read).
    """
    ssl_error = _ssl_cause(exc)
    if ssl_error is None:
        return None
    if isinstance(ssl_error, ssl.SSLCertVerificationError):
        ca = f"ca_file {security.ca_file}" if security.ca_file else "the system CA store"
        detail = getattr(ssl_error, "verify_message", None) or _reason(ssl_error)
        return (
            f"TLS: the server certificate does not verify against {ca} ({detail}): set "
            "ca_file to the CA that signed the etcd members' certificates, and list the "
            "endpoints by a name or address their certificates hold"
        )
    reason = _reason(ssl_error)
    upper = reason.upper()
    if "WRONG_VERSION_NUMBER" in upper:
        return (
            f"TLS: the endpoint does not speak TLS ({reason}): list it as http://, or start "
            "etcd with --cert-file and --key-file"
        )
    if not any(s in upper for s in _HANDSHAKE_REFUSALS):
        return None  # not a refused handshake: a transport failure like any other
    if security.cert_file is None:
        return (
            f"TLS: etcd requires a client certificate (--client-cert-auth; {reason}) and none "
            "is configured: set cert_file and key_file to one signed by etcd's "
            "--trusted-ca-file"
        )
    if "CERTIFICATE" in upper or "UNKNOWN_CA" in upper:
        return (
            f"TLS: etcd refused the client certificate {security.cert_file} ({reason}): use "
            "one signed by the CA etcd trusts (--trusted-ca-file), with client-auth usage, "
            "not expired"
        )
    return f"TLS handshake failed ({reason}): check ca_file, cert_file and key_file"


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    """The ssl error under aiohttp's wrappers (one or two deep), if there is one."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return None
        # aiohttp's wrappers subclass ssl's errors too, so they are unwrapped first.
        if isinstance(seen, aiohttp.ClientConnectorCertificateError):
            cause = seen.certificate_error
            if isinstance(cause, ssl.SSLError):
                return cause
            return ssl.SSLCertVerificationError(str(cause))
        if isinstance(seen, aiohttp.ClientSSLError) and isinstance(seen.os_error, ssl.SSLError):
            return seen.os_error
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def access_problem(message: str) -> bool:
    """True if etcd refused for lack of credentials or permission, not for its health."""
    text = message.lower()
    return any(s in text for s in ("permission denied", "user name is empty", "invalid auth token"))


def access_fix(message: str, user: str | None, scope: str) -> str:
    """How to fix a refusal for lack of credentials or of permission ("" for other errors).

    ``scope`` is the prefix hakeeper keeps its cluster under ("" if unknown)."""
    text = message.lower()
    prefix = scope or "/hakeeper/<cluster>/"
    if "user name is empty" in text or "invalid auth token" in text:
        return (
            ": etcd's authentication is enabled, so set [coordination] user and "
            f"password_file to an etcd user whose role grants readwrite on {prefix}"
        )
    if "permission denied" in text:
        who = f"etcd user {user!r}" if user else "this client"
        return (
            f": {who} may not access this key; hakeeper keeps everything under {prefix}: "
            "grant the user's role readwrite on that prefix (etcdctl role "
            f"grant-permission <role> --prefix=true readwrite {prefix})"
        )
    return ""


# --- hakeeper check ----------------------------------------------------------------------


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def insecure_settings(coordination: Coordination) -> list[str]:
    """Every way this etcd configuration leaves the cluster's state open, each with its fix.

    Empty for the raft backend and for a secure etcd configuration. Reads only file modes,
    never a password or key.
    """
    if coordination.backend != "etcd":
        return []
    problems: list[str] = []
    remote = [url for url in coordination.endpoints if not _loopback(url)]
    plain = [url for url in remote if urlsplit(url).scheme != "https"]
    if plain:
        problems.append(
            f"etcd endpoints {', '.join(plain)} use http (no TLS) to another host: anyone on "
            "the path reads and changes the cluster state; start etcd with --cert-file, "
            "--key-file, --client-cert-auth and --trusted-ca-file, list https:// endpoints "
            "and set ca_file, cert_file and key_file"
        )
    if remote and coordination.cert_file is None:
        problems.append(
            "etcd: no client certificate (cert_file, key_file): any host that reaches etcd "
            "can connect; run etcd with --client-cert-auth and give hakeeper a certificate "
            "signed by its --trusted-ca-file"
        )
    if remote and coordination.user is None:
        problems.append(
            "etcd: no user (user, password_file): hakeeper would need etcd's auth disabled, "
            "so every client may change every key; create a user whose role grants readwrite "
            "on the prefix /hakeeper/<cluster>/ only, run `etcdctl auth enable`, and set "
            "user and password_file"
        )
    files = (("key_file", coordination.key_file), ("password_file", coordination.password_file))
    for name, value in files:
        if value is None:
            continue
        try:
            st = os.stat(value)
        except OSError as exc:
            problems.append(f"etcd: {name} {value}: cannot be read ({exc.strerror})")
            continue
        problem = mode_problem(Path(value), st)
        if problem is not None:
            problems.append(f"etcd: {name} {problem}")
    return problems
