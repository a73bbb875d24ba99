"""The runtime REST API (aiohttp), bound to 127.0.0.1 by default.

    GET  /v1/servers                     every server: state, admin, weights, counters
    POST /v1/servers/{backend}/{server}  {"action": "ready|drain|maint|weight", "weight": N}
    POST /v1/reload                      re-read the config file (what SIGHUP does)
    GET  /metrics                        Prometheus text format

Every request passes `screen` (the `guard` middleware) before any handler runs and before
its body is read (HAProxy's stats levels, in two steps: reads are the ``user`` level,
changes the ``admin`` level):

- ``Host`` must name this API (its bind address, the address connected to, ``localhost``,
  a loopback address or one of ``[api] host_names``) with its port, else 403: a web page
  whose name was rebound to 127.0.0.1 (DNS rebinding) cannot talk to it;
- an ``Origin`` header, when present, must be this API's own origin, else 403: a browser
  says where a forged cross-site request comes from;
- a change (POST) needs ``Authorization: Bearer <token>`` whose SHA-256 is ``[api]
  token_hash`` (401 without it; no change at all while no token_hash is set); a read needs
  it too unless the peer is on loopback;
- a change needs ``Content-Type: application/json`` (415): an HTML form or a "simple"
  cross-site request cannot send that type without a CORS preflight, which nothing answers;
- a body over `MAX_BODY` bytes is refused (413) by its ``Content-Length``, or while read.

The token hash is read from the current config on every request, so a reload changes it.
Errors are JSON ``{"error": "..."}`` with status 400 (bad request), 404 (unknown server) or
409 (reload refused); the message says what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from aiohttp import hdrs, web
from pydantic import ValidationError

from hakeeper.balancer.api_token import token_matches
from hakeeper.balancer.config import BalancerConfig, is_loopback
from hakeeper.balancer.control import ServerCommand
from hakeeper.balancer.metrics import render
from hakeeper.balancer.servers import Server
from hakeeper.errors import ConfigError
from hakeeper.model.address import split_address

# Commands are a few dozen bytes; nothing the API takes comes near this.
MAX_BODY = 16 * 1024

# "name", "name:port", "[v6]" or "[v6]:port" (a Host header, or an Origin after "http://").
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.\-]{1,253})(?::([0-9]{1,5}))?")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Controlled(Protocol):
    @property
    def config(self) -> BalancerConfig: ...

    def all_servers(self) -> Iterable[Server]: ...

    def command(self, cmd: ServerCommand) -> Server: ...

    async def reload_file(self) -> None: ...


def _refuse(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _own_names(request: web.Request, config: BalancerConfig) -> set[str]:
    """Every name this API may be called by (lowercase, IPv6 without brackets)."""
    names = {"localhost", "127.0.0.1", "::1", *config.api.host_names}
    if config.api.bind is not None:
        names.add(split_address(config.api.bind, listen=True)[0].lower())
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if sockname:
        names.add(str(sockname[0]).lower())  # the address the client connected to
    return names


def _is_own(authority: str, names: set[str], port: int) -> bool:
    match = _HOST.fullmatch(authority)
    if match is None:
        return False
    name, given = match.groups()
    return name.strip("[]").lower() in names and int(given or 80) == port


def _local_port(request: web.Request) -> int:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return int(sockname[1]) if sockname else -1


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def screen(request: web.Request, config: BalancerConfig) -> web.Response | None:
    """Why ``request`` is refused (as the response to send), or None when it may proceed."""
    names = _own_names(request, config)
    port = _local_port(request)
    if not _is_own(request.headers.get(hdrs.HOST, ""), names, port):
        return _refuse(
            403,
            "Host does not name this API; call it by its bind address or localhost "
            "(or add the name to [api] host_names)",
        )
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is not None and not (
        origin.startswith("http://") and _is_own(origin[7:], names, port)
    ):
        return _refuse(403, "cross-origin requests are refused; call the API directly")
    change = request.method not in ("GET", "HEAD")
    token_hash = config.api.token_hash
    if change or not is_loopback(request.remote or ""):
        if token_hash is None:
            what = "changes" if change else "reads from beyond loopback"
            return _refuse(
                403,
                f"{what} need the API token, and this balancer has none: run `hakeeper lb "
                "token --file /etc/hakeeper/lb-token`, put the token_hash line it prints "
                "under [api], send the balancer SIGHUP, then pass --token-file",
            )
        token = _bearer(request)
        if token is None:
            return _refuse(
                401,
                "this needs Authorization: Bearer <token> (hakeeper lb --token-file FILE)",
                **{hdrs.WWW_AUTHENTICATE: "Bearer"},
            )
        if not token_matches(token, token_hash):
            return _refuse(
                401,
                "wrong API token (its SHA-256 is not [api] token_hash)",
                **{hdrs.WWW_AUTHENTICATE: 'Bearer error="invalid_token"'},
            )
    if change:
        if request.content_type != "application/json":
            return _refuse(415, "changes need Content-Type: application/json")
        if (request.content_length or 0) > MAX_BODY:
            return _refuse(413, f"a request body is at most {MAX_BODY} bytes")
    return None


def make_app(target: Controlled) -> web.Application:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        refusal = screen(request, target.config)
        if refusal is not None:
            return refusal
        return await handler(request)

    async def servers(_: web.Request) -> web.Response:
        return web.json_response({"servers": [s.as_dict() for s in target.all_servers()]})

    async def change(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "body must be JSON"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "body must be a JSON object"}, status=400)
        try:
            cmd = ServerCommand(
                backend=request.match_info["backend"], server=request.match_info["server"], **body
            )
        except (ValidationError, TypeError) as exc:
            return web.json_response({"error": f"bad command: {exc}"}, status=400)
        if cmd.action in ("up", "down"):
            return web.json_response(
                {"error": "up/down come from health checks; use ready, drain or maint"},
                status=400,
            )
        try:
            server = target.command(cmd)
        except ConfigError as exc:
            return web.json_response({"error": str(exc)}, status=404)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(server.as_dict())

    async def reload(_: web.Request) -> web.Response:
        try:
            await target.reload_file()
        except ConfigError as exc:
            return web.json_response({"error": str(exc)}, status=409)
        return web.json_response({"reloaded": True})

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=render(target.all_servers), content_type="text/plain", charset="utf-8"
        )

    app = web.Application(middlewares=[guard], client_max_size=MAX_BODY)
    app.router.add_get("/v1/servers", servers)
    app.router.add_post("/v1/servers/{backend}/{server}", change)
    app.router.add_post("/v1/reload", reload)
    app.router.add_get("/metrics", metrics)
    return app


async def start_api(target: Controlled, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(make_app(target), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(
            f"api: cannot listen on {host}:{port}: {exc.strerror}; choose a free [api] bind"
        ) from exc
    return runner
