"""Session middleware: ASGI (Starlette, FastAPI, any ASGI app) and WSGI (Flask, any WSGI app).

Each request gets a ``dict`` session: loaded from the session store by the id in the signed
cookie (or empty, with a new id), available as ``scope["session"]`` (ASGI: Starlette's
``request.session`` reads exactly that) or ``environ["hakeeper.session"]`` (WSGI). After the
app answered, a changed session is written back as JSON, an unchanged one is touched, both
with ``max_age`` as expiry (sliding), and the cookie is re-sent with the same ``Max-Age``.
An emptied session is deleted and its cookie expired.

The store write happens before the response headers go out, so a response a client has seen
implies its session change is acknowledged by a majority of the store's nodes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from hakeeper.sessions import cookies
from hakeeper.sessions.client import SessionClient
from hakeeper.sessions.cookies import CookieSettings
from hakeeper.sessions.sync_client import SyncClient

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

WSGI_KEY = "hakeeper.session"
POOL_SIZE = 16


class _Pool:
    """Idle store connections of one event loop (a new loop starts a new pool)."""

    def __init__(self, address: str, timeout: float, credentials: bytes | None) -> None:
        self.address = address
        self.timeout = timeout
        self.credentials = credentials
        self._idle: list[SessionClient] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    async def acquire(self) -> SessionClient:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._idle = []
            self._loop = loop
        if self._idle:
            return self._idle.pop()
        client = SessionClient(self.address, timeout=self.timeout, credentials=self.credentials)
        await client.connect()
        return client

    def release(self, client: SessionClient) -> None:
        if len(self._idle) < POOL_SIZE:
            self._idle.append(client)


class SessionMiddleware:
    """Pure ASGI middleware; ``store`` is any node's ``host:port``; ``credentials``
    (``b"user password"``) for a store started with an authfile."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        store: str,
        secret: bytes,
        cookie_name: str = "hksession",
        max_age: int = 1800,
        secure: bool = False,
        timeout: float = 5.0,
        credentials: bytes | None = None,
    ) -> None:
        self.app = app
        self.settings = CookieSettings(secret, cookie_name, max_age, secure=secure)
        self.pool = _Pool(store, timeout, credentials)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = _cookie_header(scope)
        session_id = cookies.verified_id(self.settings, header)
        client = await self.pool.acquire()
        try:
            raw = None
            if session_id is not None:
                found = await client.get(cookies.store_key(session_id))
                raw = found.data if found is not None else None
            loaded = cookies.decode(raw)
            before = cookies.encode(loaded)
            scope["session"] = loaded

            async def send_with_session(message: Message) -> None:
                if message["type"] in ("http.response.start", "websocket.accept"):
                    set_cookie = await self._save(client, session_id, scope["session"], before)
                    if set_cookie is not None:
                        headers = list(message.get("headers", []))
                        headers.append((b"set-cookie", set_cookie.encode("latin-1")))
                        message["headers"] = headers
                await send(message)

            await self.app(scope, receive, send_with_session)
        except BaseException:
            await client.close()
            raise
        self.pool.release(client)

    async def _save(
        self,
        client: SessionClient,
        session_id: str | None,
        data: dict[str, Any],
        before: bytes,
    ) -> str | None:
        max_age = self.settings.max_age
        if not data:
            if session_id is not None:
                await client.delete(cookies.store_key(session_id))
                return cookies.set_cookie_header(self.settings, None)
            return None
        encoded = cookies.encode(data)
        if session_id is None:
            session_id = cookies.new_session_id()
            await client.set(cookies.store_key(session_id), encoded, exptime=max_age)
        elif encoded != before:
            await client.set(cookies.store_key(session_id), encoded, exptime=max_age)
        else:
            await client.touch(cookies.store_key(session_id), max_age)
        return cookies.set_cookie_header(self.settings, session_id)


def _cookie_header(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            return str(value.decode("latin-1"))
    return None


class WSGISessionMiddleware:
    """WSGI middleware: ``app.wsgi_app = WSGISessionMiddleware(app.wsgi_app, ...)`` in Flask."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        store: str,
        secret: bytes,
        cookie_name: str = "hksession",
        max_age: int = 1800,
        secure: bool = False,
        timeout: float = 5.0,
        credentials: bytes | None = None,
    ) -> None:
        self.app = app
        self.settings = CookieSettings(secret, cookie_name, max_age, secure=secure)
        self.client = SyncClient(store, timeout=timeout, credentials=credentials)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        session_id = cookies.verified_id(self.settings, environ.get("HTTP_COOKIE"))
        raw = self.client.get(cookies.store_key(session_id)) if session_id else None
        loaded = cookies.decode(raw)
        before = cookies.encode(loaded)
        environ[WSGI_KEY] = loaded

        def start_with_session(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            set_cookie = self._save(session_id, environ[WSGI_KEY], before)
            if set_cookie is not None:
                headers = [*headers, ("Set-Cookie", set_cookie)]
            return start_response(status, headers, exc_info)

        return self.app(environ, start_with_session)

    def _save(self, session_id: str | None, data: dict[str, Any], before: bytes) -> str | None:
        max_age = self.settings.max_age
        if not data:
            if session_id is not None:
                self.client.delete(cookies.store_key(session_id))
                return cookies.set_cookie_header(self.settings, None)
            return None
        encoded = cookies.encode(data)
        if session_id is None:
            session_id = cookies.new_session_id()
            self.client.set(cookies.store_key(session_id), encoded, max_age)
        elif encoded != before:
            self.client.set(cookies.store_key(session_id), encoded, max_age)
        else:
            self.client.touch(cookies.store_key(session_id), max_age)
        return cookies.set_cookie_header(self.settings, session_id)


def wsgi_session(environ: dict[str, Any]) -> dict[str, Any]:
    """The session dict of a WSGI request (Flask: ``wsgi_session(request.environ)``)."""
    session: dict[str, Any] = environ[WSGI_KEY]
    return session
