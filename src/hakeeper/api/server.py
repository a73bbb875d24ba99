"""The node's REST API server (aiohttp): every request is screened before its handler runs.

In order, before the body is read: the ``Host`` must name this API (a page whose name was
rebound to 127.0.0.1 cannot reach it), an ``Origin``, when sent, must be this API's own
(a forged cross-site request says where it comes from); the caller is identified and its
role checked (`hakeeper.api.access`: 401/403, nothing changes); an action needs
``Content-Type: application/json`` (415: a form or a "simple" cross-site request cannot send
it) and a body of at most `MAX_BODY` bytes (413). The body is then validated (400).

Bounds besides the body: `listener` caps open connections and closes one that has not sent a
request head within `HEAD_TIMEOUT`; idle keep-alive connections close after
`KEEPALIVE_TIMEOUT`; header lines and counts are aiohttp's (8 KiB, 128); the SSE streams are
capped by ``[api] max_streams``; every read and action has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import hdrs, web
from pydantic import ValidationError

from hakeeper.api import access
from hakeeper.api.dashboard import dashboard_page, dashboard_script
from hakeeper.api.listener import HEAD_TIMEOUT, listen
from hakeeper.api.live_access import LiveAccess
from hakeeper.api.metrics import MetricsEndpoint
from hakeeper.api.openapi import document
from hakeeper.api.routes import PRINCIPAL, ROUTES, Context, Route
from hakeeper.api.stream import Hub
from hakeeper.config.api_section import ApiSection
from hakeeper.errors import ConfigError, CoordError
from hakeeper.model.address import split_address
from hakeeper.runtime.node_view import Face, NodeView

log = logging.getLogger(__name__)

#: The most any route reads (aiohttp's own bound); each route has its own, lower or equal.
MAX_BODY = 1024 * 1024
KEEPALIVE_TIMEOUT = 15.0
#: Seconds requests in flight get to finish when the agent stops.
SHUTDOWN_TIMEOUT = 3.0
_AUTHORITY = re.compile(r"(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.\-]{1,253})(?::([0-9]{1,5}))?")
__all__ = ["HEAD_TIMEOUT", "make_app", "serve"]


def _own_names(request: web.Request, api: ApiSection, listen_host: str) -> set[str]:
    names = {"localhost", "127.0.0.1", "::1", listen_host.lower(), *api.host_names}
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if sockname:
        names.add(str(sockname[0]).lower())
    return names


def _local_port(request: web.Request) -> int:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return int(sockname[1]) if sockname else -1


def _is_own(authority: str, names: set[str], port: int, default_port: int) -> bool:
    match = _AUTHORITY.fullmatch(authority)
    if match is None:
        return False
    name, given = match.groups()
    return name.strip("[]").lower() in names and int(given or default_port) == port


def _screen_origin(request: web.Request, api: ApiSection, listen_host: str) -> str | None:
    names, port = _own_names(request, api, listen_host), _local_port(request)
    default_port = 443 if request.secure else 80
    if not _is_own(request.headers.get(hdrs.HOST, ""), names, port, default_port):
        return (
            "Host does not name this API; call it by its listen address or localhost "
            "(or add the name to [api] host_names)"
        )
    origin = request.headers.get(hdrs.ORIGIN)
    scheme = "https://" if request.secure else "http://"
    if origin is not None and not (
        origin.startswith(scheme) and _is_own(origin[len(scheme) :], names, port, default_port)
    ):
        return "cross-origin requests are refused; call the API directly"
    return None


async def _body(request: web.Request, route: Route) -> Any:
    if route.body is None:
        return None
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(
            text='{"error": "actions need Content-Type: application/json"}',
            content_type="application/json",
        )
    too_large = web.HTTPRequestEntityTooLarge(
        max_size=route.max_body,
        actual_size=request.content_length or 0,
        text=f'{{"error": "a request body here is at most {route.max_body} bytes"}}',
        content_type="application/json",
    )
    if (request.content_length or 0) > route.max_body:
        raise too_large
    raw = await request.read()
    if len(raw) > route.max_body:
        raise too_large
    try:
        return route.body.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ConfigError(f"bad request body ({problems})") from exc


def _wrap(ctx: Context, route: Route, listen_host: str) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        refusal = _screen_origin(request, ctx.api, listen_host)
        if refusal is not None:
            return web.json_response({"error": refusal}, status=403)
        if route.role is not None:
            who = access.authorize(access.identify(request, ctx.api, datetime.now(UTC)), route.role)
            if isinstance(who, access.Refusal):
                return who.response()
            request[PRINCIPAL] = who
        try:
            body = await _body(request, route)
            return await route.handler(ctx, request, body)
        except ConfigError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        except (CoordError, TimeoutError) as exc:
            what = str(exc) or "the coordination engine did not answer in time"
            return web.json_response({"error": f"unavailable: {what}"}, status=503)

    return handler


#: The follower of the config's access keys, for `serve` to run (`hakeeper.api.live_access`).
LIVE_ACCESS = web.AppKey("live_access", LiveAccess)


def make_app(view: NodeView, api: ApiSection, listen_host: str) -> tuple[web.Application, Hub]:
    hub = Hub(view, api.max_streams)
    ctx = Context(
        view, api, hub, MetricsEndpoint(view.store, view.spec, view.node, view.observations)
    )

    def adopt(section: ApiSection) -> None:
        ctx.api = section  # every request identifies its caller against ctx.api

    app = web.Application(client_max_size=MAX_BODY)
    app[LIVE_ACCESS] = LiveAccess(view, api, adopt)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, _wrap(ctx, route, listen_host))
    spec_doc = document(ROUTES)

    async def openapi(_: web.Request) -> web.Response:
        return web.json_response(spec_doc)

    async def page(request: web.Request) -> web.Response:
        refusal = _screen_origin(request, ctx.api, listen_host)
        if refusal is not None:
            return web.json_response({"error": refusal}, status=403)
        return dashboard_page()

    async def script(_: web.Request) -> web.Response:
        return dashboard_script()

    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/", page)
    app.router.add_get("/dashboard.js", script)
    return app, hub


async def serve(view: NodeView, api: ApiSection, listen_at: str) -> None:
    """Serve the API until cancelled. A listener that cannot be opened is logged and the
    node runs on without it: the API is a face, never a reason to drop resources."""
    address = split_address(listen_at, listen=True)
    try:
        tls = access.tls_context(api)
    except ConfigError as exc:
        log.error("event=api_not_serving reason=%r", str(exc))
        return
    app, hub = make_app(view, api, address.host)
    runner = web.AppRunner(
        app, access_log=None, keepalive_timeout=KEEPALIVE_TIMEOUT, shutdown_timeout=SHUTDOWN_TIMEOUT
    )
    await runner.setup()
    try:
        server = await listen(runner, address.host, address.port, tls, api.max_connections)
    except OSError as exc:
        log.error(
            "event=api_not_serving listen=%s reason=%r fix=%r",
            listen_at, exc.strerror, "set [api] listen or listen_on to a free address",
        )  # fmt: skip
        await runner.cleanup()
        return
    bound = server.sockets[0].getsockname() if server.sockets else (address.host, 0)
    log.info(
        "event=api_serving node=%s listen=%s:%s tls=%s",
        view.node, bound[0], bound[1], tls is not None,
    )  # fmt: skip
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(hub.run(), name="api-stream")
            tasks.create_task(app[LIVE_ACCESS].run(), name="api-access")
    finally:
        hub.close()
        server.close()
        with contextlib.suppress(asyncio.CancelledError):
            await runner.cleanup()


def api_face(api: ApiSection, node: str, listen_at: str | None = None) -> list[Face]:
    """What ``hakeeper agent`` gives its daemon to serve: the API, unless ``[api] enabled =
    false``; ``listen_at`` (``--api-listen``) wins over ``[api] listen_on`` and ``listen``."""
    if not api.enabled:
        return []
    where = listen_at or api.listen_for(node)
    try:
        split_address(where, listen=True)
    except ValueError as exc:
        raise ConfigError(f"--api-listen: {exc}") from exc

    async def run(view: NodeView) -> None:
        await serve(view, api, where)

    return [run]
