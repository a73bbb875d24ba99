"""Session ids in hmac-signed cookies, and the session data they point at.

The cookie holds ``<id>.<signature>``: a random id (24 bytes, URL-safe) and the base64url
HMAC-SHA256 of the id under the application's secret. A cookie whose signature does not
verify is ignored (a new session starts), so a client cannot pick or guess another's id.
The data lives in the session store under ``session:<id>`` as JSON.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

KEY_PREFIX = b"session:"


@dataclass(frozen=True, slots=True)
class CookieSettings:
    secret: bytes
    name: str = "hksession"
    max_age: int = 1800  # sliding: every request with the session extends it this far
    path: str = "/"
    secure: bool = False
    same_site: str = "lax"

    def __post_init__(self) -> None:
        if len(self.secret) < 16:
            raise ValueError(
                "session secret must be at least 16 bytes; use secrets.token_bytes(32)"
            )


def new_session_id() -> str:
    return secrets.token_urlsafe(24)


def sign(settings: CookieSettings, session_id: str) -> str:
    digest = hmac.new(settings.secret, session_id.encode(), hashlib.sha256).digest()
    return f"{session_id}.{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"


def verified_id(settings: CookieSettings, cookie_header: str | None) -> str | None:
    """The session id in the request's cookie header if its signature verifies, else None."""
    if not cookie_header:
        return None
    cookies = SimpleCookie()
    try:
        cookies.load(cookie_header)
    except ValueError:
        return None
    morsel = cookies.get(settings.name)
    if morsel is None:
        return None
    session_id, _, _ = morsel.value.partition(".")
    if not session_id or not hmac.compare_digest(sign(settings, session_id), morsel.value):
        return None
    return session_id


def set_cookie_header(settings: CookieSettings, session_id: str | None) -> str:
    """A Set-Cookie value: the signed id with Max-Age, or an expired one to drop it."""
    value = sign(settings, session_id) if session_id else ""
    max_age = settings.max_age if session_id else 0
    parts = [f"{settings.name}={value}", f"Path={settings.path}", f"Max-Age={max_age}"]
    parts += ["HttpOnly", f"SameSite={settings.same_site}"]
    if settings.secure:
        parts.append("Secure")
    return "; ".join(parts)


def store_key(session_id: str) -> bytes:
    return KEY_PREFIX + session_id.encode()


def encode(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


def decode(raw: bytes | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
