"""The HTTP side of one etcd client: the aiohttp session (with TLS), each member's API prefix,
the auth token, and single requests to one endpoint.

Failover, retries across members and what an answer means live in `hakeeper.coord.etcd`;
this module only sends one request to one member and says how it failed.

Authentication (etcd's RBAC through the JSON gateway): ``POST /v3/auth/authenticate``
``{name, password}`` answers a token, sent as the ``Authorization`` header on every request.
etcd forgets a simple token after ``--auth-token-ttl`` seconds unused (a JWT after its
lifetime) and answers ``invalid auth token`` (gRPC Unauthenticated); a token minted before an
RBAC change may be refused with ``revision of auth store is old``. Both are refused with
nothing applied, so the request is sent once more after one re-authentication; the lock
makes concurrent requests that hit the same stale token authenticate only once.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import aiohttp

from hakeeper.coord.etcd_json import Json, api_prefix, find_error
from hakeeper.coord.etcd_security import CertificateReloader, EtcdSecurity, tls_failure
from hakeeper.errors import ConfigError, CoordError

LEADER_HEADER = {"Grpc-Metadata-hasleader": "true"}
TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError, OSError, ValueError)

_TOKEN_REFUSED = ("invalid auth token", "revision of auth store is old")
_CN_REFUSED = b"CommonName of client"
_MAX_ANSWER = 64 * 1024 * 1024
"""A range over a cluster's whole prefix stays far below this; more is not a real answer."""


def token_refused(message: str) -> bool:
    """True if etcd refused the request only because the token expired or went stale."""
    text = message.lower()
    return any(s in text for s in _TOKEN_REFUSED)


async def _read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise ValueError(f"answered over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class EndpointFailed(Exception):
    """One endpoint failed at the transport level; ``maybe_sent`` if the request left.

    ``tls`` marks a failed TLS handshake: a configuration problem, never a lost request.
    """

    def __init__(self, endpoint: str, reason: str, *, maybe_sent: bool, tls: bool = False) -> None:
        super().__init__(f"{endpoint}: {reason}")
        self.endpoint = endpoint
        self.reason = reason
        self.maybe_sent = maybe_sent
        self.tls = tls


def describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError) and not isinstance(
        exc, aiohttp.ClientSSLError
    ):
        return f"cannot connect ({exc.os_error.strerror or exc.os_error})"
    return str(exc) or type(exc).__name__


class StreamBroken(Exception):
    """A watch stream ended or went silent; the watch resumes on another endpoint."""

    def __init__(self, reason: str, *, no_leader: bool = False) -> None:
        super().__init__(reason)
        self.no_leader = no_leader


def raise_tls_failures(failures: Sequence[EndpointFailed]) -> None:
    """A `ConfigError` if TLS failed with endpoints: each distinct reason once, with the
    endpoints it holds for (the same wrong CA usually fails with every member)."""
    by_reason: dict[str, list[str]] = {}
    for failure in failures:
        if failure.tls:
            by_reason.setdefault(failure.reason, []).append(failure.endpoint)
    if by_reason:
        raise ConfigError(
            "etcd: no endpoint could be reached: "
            + "; ".join(f"{', '.join(eps)}: {reason}" for reason, eps in by_reason.items())
        )


class EtcdTransport:
    """Owns the session and the token; see the module docstring."""

    def __init__(
        self, endpoints: list[str], security: EtcdSecurity, *, request_timeout: float
    ) -> None:
        self.security = security
        self.https = security.check_endpoints(endpoints)
        # Built now, so a bad certificate, key or CA file fails at construction.
        self._ssl = security.ssl_context() if self.https else None
        self._certificate = (
            CertificateReloader(security, self._ssl)
            if self._ssl is not None and security.cert_file is not None
            else None
        )
        if security.user is not None:
            security.password()  # an unreadable password file fails here too, not later
        self._request_timeout = request_timeout
        self._session: aiohttp.ClientSession | None = None
        self._api: dict[str, str] = {}
        self._token: str | None = None
        self.authentications = 0  # tokens obtained so far (diagnostic, and for tests)
        self._auth_lock = asyncio.Lock()

    # --- session --------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._session is not None

    def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else True)
            self._session = aiohttp.ClientSession(connector=connector, raise_for_status=False)

    async def close(self) -> None:
        session, self._session = self._session, None
        self._token = None
        if session is not None:
            await session.close()

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise CoordError("etcd: the coordinator is closed or not connected")
        return self._session

    @property
    def token(self) -> str | None:
        """The current auth token (None without a user); never logged or formatted."""
        return self._token

    @property
    def certificate_problem(self) -> str | None:
        """Why a renewed client certificate on disk is not in use (None when all is well)."""
        return self._certificate.problem if self._certificate is not None else None

    def _request_ssl(self) -> ssl.SSLContext | bool:
        """The TLS context for the next request (the renewed one once the files changed);
        True, aiohttp's default, for plain http endpoints."""
        if self._certificate is not None:
            return self._certificate.refresh()
        return self._ssl if self._ssl is not None else True

    def headers(self) -> dict[str, str]:
        if self._token is None:
            return LEADER_HEADER
        return {**LEADER_HEADER, "Authorization": self._token}

    def _failed(self, endpoint: str, exc: BaseException, *, maybe_sent: bool) -> EndpointFailed:
        tls = tls_failure(exc, self.security) if self.https else None
        if tls is not None:
            return EndpointFailed(endpoint, tls, maybe_sent=False, tls=True)
        if isinstance(exc, aiohttp.ClientConnectorError):
            return EndpointFailed(endpoint, describe(exc), maybe_sent=False)
        return EndpointFailed(endpoint, describe(exc), maybe_sent=maybe_sent)

    # --- requests -------------------------------------------------------------------------

    async def post(self, endpoint: str, path: str, payload: Json, *, stream: bool = False) -> Json:
        """One POST to one endpoint: the parsed answer (errors included), or `EndpointFailed`.

        For a streamed call only the first object is read and its ``result`` unwrapped.
        An expired token is renewed once and the request sent again (it was not applied).
        """
        token = self._token
        body = await self._post_once(endpoint, path, payload, stream=stream)
        failure = find_error(body)
        if self.security.user is not None and failure and token_refused(failure.message):
            await self.renew_token(endpoint, token)
            body = await self._post_once(endpoint, path, payload, stream=stream)
        return body

    async def _post_once(
        self, endpoint: str, path: str, payload: Json, *, stream: bool, token: bool = True
    ) -> Json:
        timeout = aiohttp.ClientTimeout(total=self._request_timeout)
        try:
            url = endpoint + await self.api_prefix(endpoint) + path
            async with self._require_session().post(
                url,
                json=payload,
                headers=self.headers() if token else LEADER_HEADER,
                timeout=timeout,
                ssl=self._request_ssl(),
            ) as response:
                if stream:
                    raw = await response.content.readline()
                else:
                    raw = await _read_bounded(response, _MAX_ANSWER)
                status = response.status
        except TRANSPORT_ERRORS as exc:
            raise self._failed(endpoint, exc, maybe_sent=True) from exc
        if status == 400 and raw.startswith(_CN_REFUSED):
            raise ConfigError(
                f"etcd {endpoint}: the JSON gateway refuses client certificates that carry a "
                f"CommonName ({self.security.cert_file}): issue hakeeper's client "
                "certificate without a CN (subject alternative names only) and name the etcd "
                "user with user and password_file"
            )
        body = self.parse(endpoint, raw)
        result = body.get("result")
        return result if stream and isinstance(result, dict) else body

    async def open_stream(self, endpoint: str, path: str, payload: Json) -> aiohttp.ClientResponse:
        """A streamed POST (a watch) once its response head arrived; the caller reads and
        closes the response.

        The stream itself has no read timeout (the watch checks silence itself), but its
        head must come within ``request_timeout``: a hung member accepts the connection and
        the request and never answers, and a watch must move on from it, not wait forever.
        """
        timeout = aiohttp.ClientTimeout(total=None, connect=self._request_timeout, sock_read=None)
        try:
            url = endpoint + await self.api_prefix(endpoint) + path
            async with asyncio.timeout(self._request_timeout):
                return await self._require_session().post(
                    url,
                    json=payload,
                    headers=self.headers(),
                    timeout=timeout,
                    ssl=self._request_ssl(),
                )
        except TRANSPORT_ERRORS as exc:
            raise self._failed(endpoint, exc, maybe_sent=True) from exc

    async def api_prefix(self, endpoint: str) -> str:
        """``/v3`` or ``/v3beta`` for this member, read once from ``GET /version``."""
        if endpoint not in self._api:
            timeout = aiohttp.ClientTimeout(total=self._request_timeout)
            try:
                async with self._require_session().get(
                    endpoint + "/version", timeout=timeout, ssl=self._request_ssl()
                ) as response:
                    doc: Any = json.loads(await _read_bounded(response, 64 * 1024))
            except TRANSPORT_ERRORS as exc:
                raise self._failed(endpoint, exc, maybe_sent=False) from exc
            if not isinstance(doc, dict):
                raise EndpointFailed(endpoint, "GET /version is not etcd's", maybe_sent=False)
            try:
                self._api[endpoint] = api_prefix(doc)
            except CoordError as exc:
                raise EndpointFailed(endpoint, str(exc), maybe_sent=False) from exc
        return self._api[endpoint]

    async def stream_objects(
        self, endpoint: str, response: aiohttp.ClientResponse, idle: float
    ) -> AsyncGenerator[Json]:
        """Newline-delimited JSON objects of a stream; after ``idle`` seconds of silence,
        check the member is alive (etcd's progress notifications come only every ~10
        minutes). `StreamBroken` when the stream ends or the member is gone."""
        buffer = b""
        while True:
            try:
                async with asyncio.timeout(idle):
                    chunk = await response.content.readany()
            except TimeoutError:
                if not await self._alive(endpoint):
                    raise StreamBroken(f"{endpoint}: silent and not answering") from None
                continue
            except TRANSPORT_ERRORS as exc:
                raise StreamBroken(f"{endpoint}: {describe(exc)}") from exc
            if not chunk:
                if buffer.strip():  # an error answer may lack the final newline
                    yield self._parse_streamed(endpoint, buffer)
                raise StreamBroken(f"{endpoint}: stream closed (HTTP {response.status})")
            buffer += chunk
            if len(buffer) > _MAX_ANSWER:
                raise StreamBroken(f"{endpoint}: a watch message over {_MAX_ANSWER} bytes")
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    yield self._parse_streamed(endpoint, line)

    def _parse_streamed(self, endpoint: str, raw: bytes) -> Json:
        """A line that is no JSON object breaks the stream (the watch resumes elsewhere)."""
        try:
            return self.parse(endpoint, raw)
        except EndpointFailed as exc:
            raise StreamBroken(str(exc)) from exc

    async def _alive(self, endpoint: str) -> bool:
        try:
            body = await self.post(endpoint, "/maintenance/status", {})
        except EndpointFailed:
            return False
        return find_error(body) is None

    @staticmethod
    def parse(endpoint: str, raw: bytes) -> Json:
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise EndpointFailed(
                endpoint, f"answered non-JSON {raw[:80]!r}", maybe_sent=True
            ) from exc
        if not isinstance(body, dict):
            raise EndpointFailed(endpoint, f"answered {raw[:80]!r}", maybe_sent=True)
        return body

    # --- authentication -------------------------------------------------------------------

    async def renew_token(self, endpoint: str, stale: str | None) -> None:
        """Authenticate again unless another request already replaced ``stale``.

        Credentials that stopped working while running (a changed password, a deleted user)
        raise `CoordError`, which every caller of a running coordinator handles, with the
        same message `authenticate` gives at connect.
        """
        async with self._auth_lock:
            if self._token == stale:
                try:
                    await self.authenticate(endpoint)
                except ConfigError as exc:
                    raise CoordError(str(exc)) from None

    async def authenticate(self, endpoint: str) -> None:
        """Trade user and password for a token at ``endpoint``.

        `ConfigError` when etcd refuses the credentials or has auth disabled (a configured
        user on an open etcd protects nothing); `EndpointFailed` on transport failure.
        """
        user = self.security.user
        if user is None:
            return
        # The old token stays in use until the new one arrives: a request sent meanwhile with
        # no token would be refused for good ("user name is empty"), not renewed. It is not
        # sent with the authentication itself, which etcd would refuse for it.
        payload = {"name": user, "password": self.security.password()}
        body = await self._post_once(
            endpoint, "/auth/authenticate", payload, stream=False, token=False
        )
        failure = find_error(body)
        if failure is not None:
            text = failure.message.lower()
            if "authentication failed" in text:
                raise ConfigError(
                    f"etcd {endpoint}: user {user!r} could not authenticate (wrong password "
                    "or no such user; etcd does not say which): check the first line of "
                    f"password_file {self.security.password_file} and that the user exists "
                    f"(etcdctl user get {user})"
                )
            if "not enabled" in text:
                raise ConfigError(
                    f"etcd {endpoint}: user {user!r} is configured but etcd's authentication "
                    "is disabled, so any client may change any key: run `etcdctl auth "
                    "enable`, or remove user and password_file"
                )
            raise failure.kind(f"etcd {endpoint}: authenticating {user!r}: {failure.message}")
        token = body.get("token")
        if not isinstance(token, str) or not token or len(token) > 4096:
            raise CoordError(f"etcd {endpoint}: authenticate answered no usable token")
        self._token = token
        self.authentications += 1
