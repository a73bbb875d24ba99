"""Who is calling the REST API, and what they may do.

A caller is named by a bearer token (``Authorization: Bearer <token>``, whose SHA-256 is one
of ``[api.tokens]``: why SHA-256 and not a slow hash, see `hakeeper.balancer.api_token`) or
by a client certificate the configured CA signed (its CN, with a role in
``[api] client_certs``). Without either, a request is anonymous: allowed to read only when
``anonymous_read = true``, never to act. Roles are ordered: ``read`` < ``operate`` <
``admin``; a route names the least role it needs.

Refusals: no or unknown credential, or an expired token → 401 (with ``WWW-Authenticate``);
a known caller whose role is too low → 403. Tokens are compared by their digests in
constant time, every configured one, so timing does not say which name matched.
"""

from __future__ import annotations

import hmac
import ssl
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import hdrs, web

from hakeeper.balancer.api_token import MAX_TOKEN_BYTES, new_token, token_digest
from hakeeper.config.api_section import API_ROLES, ApiRole, ApiSection
from hakeeper.errors import ConfigError

__all__ = ["Principal", "Refusal", "identify", "new_token", "tls_context", "token_line"]


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: ApiRole
    how: str  # "token", "certificate" or "anonymous"

    def may(self, needed: ApiRole) -> bool:
        return API_ROLES.index(self.role) >= API_ROLES.index(needed)


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    message: str

    def response(self) -> web.Response:
        headers = {hdrs.WWW_AUTHENTICATE: "Bearer"} if self.status == 401 else {}
        return web.json_response({"error": self.message}, status=self.status, headers=headers)


ANONYMOUS = Principal("anonymous", "read", "anonymous")


def _bearer(request: web.BaseRequest) -> str | None:
    scheme, _, token = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _certificate_cn(request: web.BaseRequest) -> str | None:
    """The CN of a client certificate the TLS handshake verified (None without one)."""
    transport = request.transport
    peer: Any = transport.get_extra_info("peercert") if transport is not None else None
    if not peer:
        return None
    for rdn in peer.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def identify(request: web.BaseRequest, api: ApiSection, now: datetime) -> Principal | Refusal:
    """The caller of ``request``, or why it is refused (before any role is considered)."""
    token = _bearer(request)
    if token is not None:
        if len(token) > MAX_TOKEN_BYTES:
            return Refusal(401, "the bearer token is not one of [api.tokens]")
        digest = token_digest(token).encode()
        matched = None
        for name, entry in api.tokens.items():  # every one: the time does not tell which
            if hmac.compare_digest(digest, entry.hash.encode()):
                matched = name
        if matched is None:
            return Refusal(401, "the bearer token is not one of [api.tokens]")
        if api.expired(matched, now):
            return Refusal(
                401,
                f"the token {matched!r} expired; make a new one with "
                f"`hakeeper api token create --name {matched} --role "
                f"{api.tokens[matched].role}`",
            )
        return Principal(matched, api.tokens[matched].role, "token")
    cn = _certificate_cn(request)
    if cn is not None:
        role = api.client_certs.get(cn)
        if role is None:
            return Refusal(401, f"client certificate {cn!r} has no role in [api] client_certs")
        return Principal(cn, role, "certificate")
    if api.anonymous_read:
        return ANONYMOUS
    return Refusal(
        401,
        "this needs Authorization: Bearer <token> (hakeeper --url URL --token-file FILE) "
        "or a client certificate",
    )


def authorize(who: Principal | Refusal, needed: ApiRole) -> Principal | Refusal:
    if isinstance(who, Refusal) or who.may(needed):
        return who
    return Refusal(403, f"{who.name} has the role {who.role}; this needs {needed}")


def token_line(name: str, token: str, role: ApiRole) -> str:
    """The TOML line to paste under ``[api.tokens]`` (the hash, never the token)."""
    return f'{name} = {{ hash = "{token_digest(token)}", role = "{role}" }}'


def tls_context(api: ApiSection) -> ssl.SSLContext | None:
    """The server's TLS context when ``tls_cert_file`` is set; with ``client_ca_file`` a
    client may present a certificate (optional: tokens still work over the same port)."""
    if api.tls_cert_file is None or api.tls_key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(api.tls_cert_file, api.tls_key_file)
        if api.client_ca_file is not None:
            context.load_verify_locations(cafile=api.client_ca_file)
            context.verify_mode = ssl.CERT_OPTIONAL
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"[api] TLS files do not load ({exc}); check tls_cert_file, tls_key_file and "
            "client_ca_file (PEM, readable by the agent)"
        ) from exc
    return context
