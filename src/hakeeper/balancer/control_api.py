"""The runtime REST API (aiohttp), bound to 127.0.0.1 by default.

    GET  /v1/servers                     every server: state, admin, weights, counters
    POST /v1/servers/{backend}/{server}  {"action": "ready|drain|maint|weight", "weight": N}
    POST /v1/reload                      re-read the config file (what SIGHUP does)
    GET  /metrics                        Prometheus text format

Errors are JSON ``{"error": "..."}`` with status 400 (bad request), 404 (unknown server) or
409 (reload refused); the message says what to fix.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from aiohttp import web
from pydantic import ValidationError

from hakeeper.balancer.control import ServerCommand
from hakeeper.balancer.metrics import render
from hakeeper.balancer.servers import Server
from hakeeper.errors import ConfigError


class Controlled(Protocol):
    def all_servers(self) -> Iterable[Server]: ...

    def command(self, cmd: ServerCommand) -> Server: ...

    async def reload_file(self) -> None: ...


def make_app(target: Controlled) -> web.Application:
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

    app = web.Application()
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
