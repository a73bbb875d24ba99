"""The REST API's routes: one table, read by the server (`hakeeper.api.server`) and by the
OpenAPI document (`hakeeper.api.openapi`), so the two cannot disagree.

Reads need the ``read`` role (or ``anonymous_read``); resource and node actions
``operate``; fencing ``admin``. The health endpoints answer without a credential, like
Patroni's: a load balancer polls them, and they say only 200 or 503.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from hakeeper.api import actions, config_actions, plan_route, targets
from hakeeper.api.access import Principal
from hakeeper.api.availability_route import availability
from hakeeper.api.bodies import (
    MAX_CONFIG,
    Body,
    Empty,
    Fence,
    Maintenance,
    MaybeOnNode,
    NewConfig,
    OnNode,
    Restart,
)
from hakeeper.api.config_actions import ApplyPlan
from hakeeper.api.metrics import MetricsEndpoint
from hakeeper.api.stream import Hub, sse
from hakeeper.config.api_section import ApiRole, ApiSection
from hakeeper.errors import ConfigError, CoordError
from hakeeper.model.events import FailoverFinished, OperatorAction, to_dict
from hakeeper.runtime.node_view import NodeView

log = logging.getLogger(__name__)

#: Deadline of a read (one status report: a few reads through the consensus log).
READ_TIMEOUT = 15.0
#: Deadline of an action besides its own (restart waits up to its ``timeout``).
ACTION_TIMEOUT = 30.0


#: Where the server leaves the caller it identified, for the handler that records it.
PRINCIPAL = web.RequestKey("principal", Principal)


@dataclass(slots=True)
class Context:
    view: NodeView
    api: ApiSection
    hub: Hub
    #: One per server: it shares one read of the cluster between scrapes.
    metrics: MetricsEndpoint


Handler = Callable[[Context, web.Request, Any], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    role: ApiRole | None  # None: no credential needed
    summary: str
    handler: Handler
    body: type[Body] | None = None
    #: What a 200 means for a health endpoint (documented next to its 503).
    health: bool = False
    stream: bool = False
    #: The largest body this route reads (bytes).
    max_body: int = 16 * 1024


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


# --- reads -----------------------------------------------------------------------------------


async def _report(ctx: Context) -> dict[str, Any]:
    return await ctx.hub.status()


async def status(ctx: Context, _: web.Request, __: None) -> web.StreamResponse:
    return _json(await _report(ctx))


async def nodes(ctx: Context, _: web.Request, __: None) -> web.StreamResponse:
    report = await _report(ctx)
    return _json({"quorum": report["quorum"], "nodes": report["nodes"]})


async def resources(ctx: Context, _: web.Request, __: None) -> web.StreamResponse:
    report = await _report(ctx)
    return _json({"quorum": report["quorum"], "resources": report["resources"]})


def _since(request: web.Request) -> int:
    text = request.query.get("since", "0")
    if not text.isdigit() or len(text) > 19:
        raise ConfigError("since: give a revision (a whole number, 0 for everything kept)")
    return int(text)


async def events(ctx: Context, request: web.Request, _: None) -> web.StreamResponse:
    since = _since(request)
    async with asyncio.timeout(READ_TIMEOUT):
        found, revision = await ctx.view.store.event_log(ctx.view.node).read_since(since)
    return _json(
        {"revision": revision, "events": [{"revision": r, **to_dict(e)} for r, e in found]}
    )


async def failovers(ctx: Context, _: web.Request, __: None) -> web.StreamResponse:
    async with asyncio.timeout(READ_TIMEOUT):
        found, _revision = await ctx.view.store.event_log(ctx.view.node).read_since(0)
    done = [e for _r, e in found if isinstance(e, FailoverFinished)]
    return _json(
        {
            "failovers": [to_dict(e) for e in done],
            "count": len(done),
            "mean_duration": sum(e.duration for e in done) / len(done) if done else None,
            "max_duration": max((e.duration for e in done), default=None),
        }
    )


async def stream(ctx: Context, request: web.Request, _: None) -> web.StreamResponse:
    """Server-sent events: what the log missed since ``Last-Event-ID`` (or ``?since=``),
    the current status, then every new event and status as they come."""
    if ctx.hub.full():
        return _error(503, "too many open streams on this node; try another node or later")
    last = request.headers.get("Last-Event-ID") or request.query.get("since")
    since = int(last) if last is not None and last.isdigit() and len(last) <= 19 else None
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
    )
    async with ctx.hub.subscribe() as queue:
        await response.prepare(request)
        sent = since or 0
        if since is not None:
            async with asyncio.timeout(READ_TIMEOUT):
                found, _rev = await ctx.view.store.event_log(ctx.view.node).read_since(since)
            for revision, event in found:
                await response.write(sse("event", to_dict(event), revision).data)
                sent = revision
        await response.write(sse("status", await _report(ctx)).data)
        while True:
            try:
                async with asyncio.timeout(15.0):
                    message = await queue.get()
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if message is None:
                break
            if message.revision is not None and message.revision <= sent:
                continue  # already sent from the log
            await response.write(message.data)
    return response


# --- health (Patroni's /primary: 200 on the node that runs it, 503 elsewhere) -------------


async def metrics(ctx: Context, _: web.Request, __: None) -> web.StreamResponse:
    body, content_type = await ctx.metrics.metrics_response_body()
    return web.Response(body=body, headers={"Content-Type": content_type})


def _health(ok: bool, what: str) -> web.Response:
    return _json({"ok": ok, "what": what}, 200 if ok else 503)


def _local_roles(ctx: Context, primitives: tuple[str, ...]) -> set[str]:
    if not ctx.view.member():
        return set()  # without its lease this node may no longer run anything
    return {role for (rid, _), role in ctx.view.local().items() if rid in primitives}


async def health(ctx: Context, _: web.Request, __: None) -> web.StreamResponse:
    return _health(ctx.view.member(), f"{ctx.view.node} is a member of the cluster")


async def controller(ctx: Context, _: web.Request, __: None) -> web.StreamResponse:
    try:
        async with asyncio.timeout(READ_TIMEOUT):
            current = await ctx.view.store.controller()
    except (CoordError, TimeoutError):
        current = None
    ok = ctx.view.member() and current is not None and current.node == ctx.view.node
    return _health(ok, f"{ctx.view.node} is the controller")


def _known(ctx: Context, request: web.Request) -> str:
    rid = request.match_info["id"]
    targets.require_resource(ctx.view.spec(), rid)
    return rid


async def holder(ctx: Context, request: web.Request, _: None) -> web.StreamResponse:
    rid = _known(ctx, request)
    roles = _local_roles(ctx, targets.primitives_of(ctx.view.spec(), rid))
    return _health(bool(roles & {"started", "promoted"}), f"{rid} runs on {ctx.view.node}")


async def primary(ctx: Context, request: web.Request, _: None) -> web.StreamResponse:
    rid = _known(ctx, request)
    roles = _local_roles(ctx, targets.primitives_of(ctx.view.spec(), rid))
    return _health("promoted" in roles, f"{rid} is primary on {ctx.view.node}")


async def replica(ctx: Context, request: web.Request, _: None) -> web.StreamResponse:
    rid = _known(ctx, request)
    roles = _local_roles(ctx, targets.primitives_of(ctx.view.spec(), rid))
    ok = "started" in roles and "promoted" not in roles
    return _health(ok, f"{rid} is a replica on {ctx.view.node}")


# --- actions ---------------------------------------------------------------------------------

Work = Callable[[], Awaitable[tuple[int, list[str]]]]


async def _act(
    ctx: Context, request: web.Request, action: str, target: str, work: Work, extra: float = 0
) -> web.StreamResponse:
    """Run one action body (the CLI's own), record who did it, answer what it printed."""
    who = request[PRINCIPAL]
    async with asyncio.timeout(ACTION_TIMEOUT + extra):
        code, lines = await work()
    log.info(
        "event=api_action actor=%s how=%s action=%s target=%r exit_code=%d",
        who.name, who.how, action, target, code,
    )  # fmt: skip
    try:
        async with asyncio.timeout(READ_TIMEOUT):
            await ctx.view.store.event_log(ctx.view.node).append(
                OperatorAction(time.time(), who.name, action, target, ctx.view.node)
            )
    except (CoordError, TimeoutError) as exc:
        lines.append(f"warning: the event log entry was not written ({exc})")
    return _json({"exit_code": code, "lines": lines})


def _done(lines: list[str]) -> tuple[int, list[str]]:
    return 0, lines


def _rid(request: web.Request) -> str:
    return request.match_info["id"]


def _node(request: web.Request) -> str:
    return request.match_info["node"]


async def move(ctx: Context, request: web.Request, body: OnNode) -> web.StreamResponse:
    rid, coord, spec = _rid(request), ctx.view.coord, ctx.view.spec()

    async def work() -> tuple[int, list[str]]:
        return _done(await actions.constrain(coord, spec, "move", rid, body.node))

    return await _act(ctx, request, "resource.move", f"{rid} {body.node}", work)


async def ban(ctx: Context, request: web.Request, body: OnNode) -> web.StreamResponse:
    rid, coord, spec = _rid(request), ctx.view.coord, ctx.view.spec()

    async def work() -> tuple[int, list[str]]:
        return _done(await actions.constrain(coord, spec, "ban", rid, body.node))

    return await _act(ctx, request, "resource.ban", f"{rid} {body.node}", work)


async def clear(ctx: Context, request: web.Request, body: MaybeOnNode) -> web.StreamResponse:
    rid, coord, spec = _rid(request), ctx.view.coord, ctx.view.spec()

    async def work() -> tuple[int, list[str]]:
        return _done(await actions.clear(coord, spec, rid, body.node))

    return await _act(ctx, request, "resource.clear", f"{rid} {body.node or ''}".strip(), work)


async def cleanup(ctx: Context, request: web.Request, body: MaybeOnNode) -> web.StreamResponse:
    rid, coord, spec = _rid(request), ctx.view.coord, ctx.view.spec()

    async def work() -> tuple[int, list[str]]:
        return _done(await actions.cleanup(coord, spec, rid, body.node))

    return await _act(ctx, request, "resource.cleanup", f"{rid} {body.node or ''}".strip(), work)


async def stop(ctx: Context, request: web.Request, _: Empty) -> web.StreamResponse:
    rid, coord, spec = _rid(request), ctx.view.coord, ctx.view.spec()

    async def work() -> tuple[int, list[str]]:
        return _done(await actions.set_role(coord, spec, rid, stopped=True))

    return await _act(ctx, request, "resource.stop", rid, work)


async def start(ctx: Context, request: web.Request, _: Empty) -> web.StreamResponse:
    rid, coord, spec = _rid(request), ctx.view.coord, ctx.view.spec()

    async def work() -> tuple[int, list[str]]:
        return _done(await actions.set_role(coord, spec, rid, stopped=False))

    return await _act(ctx, request, "resource.start", rid, work)


async def restart(ctx: Context, request: web.Request, body: Restart) -> web.StreamResponse:
    rid, coord, spec = _rid(request), ctx.view.coord, ctx.view.spec()

    async def work() -> tuple[int, list[str]]:
        return await actions.restart(coord, spec, rid, body.timeout)

    return await _act(ctx, request, "resource.restart", rid, work, extra=body.timeout)


def _flag(name: str, flag: str, on: bool) -> Handler:
    async def handler(ctx: Context, request: web.Request, body: Any) -> web.StreamResponse:
        node, coord, spec = _node(request), ctx.view.coord, ctx.view.spec()
        value = not body.off if isinstance(body, Maintenance) else on

        async def work() -> tuple[int, list[str]]:
            return _done(await actions.set_flag(coord, spec, node, flag, value))

        return await _act(ctx, request, f"node.{name}", node, work)

    return handler


async def fence(ctx: Context, request: web.Request, body: Fence) -> web.StreamResponse:
    node, coord, spec = _node(request), ctx.view.coord, ctx.view.spec()

    async def work() -> tuple[int, list[str]]:
        if body.confirm:
            lines = await actions.confirm(coord, spec, node, force=body.force, now=time.time())
            return 0, lines
        fenced, lines = await actions.through_devices(
            coord, spec, node, action="reboot" if body.reboot else "off", now=time.time
        )
        return (0 if fenced else 1), lines

    return await _act(ctx, request, "node.fence", node, work, extra=ACTION_TIMEOUT * 4)


async def _plan(ctx: Context, text: str) -> ApplyPlan:
    async with asyncio.timeout(READ_TIMEOUT):
        return await config_actions.prepare(
            ctx.view.coord, ctx.view.spec(), "", text, "request body", time.time()
        )


async def config_plan(ctx: Context, _: web.Request, body: NewConfig) -> web.StreamResponse:
    plan = await _plan(ctx, body.text)
    return _json(
        {
            "changed": plan.changed,
            "diff": list(plan.diff),
            "notes": list(plan.notes),
            "actions": [a.key for a in plan.transition.actions if a.kind != "monitor"],
            "base_revision": plan.base_revision,
        }
    )


async def config_apply(ctx: Context, request: web.Request, body: NewConfig) -> web.StreamResponse:
    async def work() -> tuple[int, list[str]]:
        plan = await _plan(ctx, body.text)
        if not plan.changed:
            return 0, [*plan.notes, "same as the config in force; nothing to apply"]
        if not await config_actions.write(ctx.view.coord, ctx.view.spec(), plan):
            raise ConfigError(
                "another config was applied while this one was being planned; nothing "
                "written. Plan again to see the new difference"
            )
        return 0, [*plan.notes, "applied: the agents load it next"]

    return await _act(ctx, request, "config.apply", "cluster file", work)


ROUTES: tuple[Route, ...] = (
    Route(
        "GET", "/v1/status", "read", "The cluster status (the document of `status --json`)", status
    ),
    Route("GET", "/v1/nodes", "read", "Every node: state, flags, controller", nodes),
    Route("GET", "/v1/resources", "read", "Every resource: where, role, why", resources),
    Route(
        "GET", "/v1/events", "read", "Events after ?since=REVISION, each with its revision", events
    ),
    Route(
        "GET",
        "/v1/events/stream",
        "read",
        "Live events and status (server-sent events)",
        stream,
        stream=True,
    ),
    Route("GET", "/v1/failovers", "read", "Failover history with durations", failovers),
    Route("GET", "/v1/plan", "read", "The scheduler's dry run (?what_if=Q)", plan_route.plan),
    Route("GET", "/v1/availability", "read", "Services' availability and budget", availability),
    Route("GET", "/metrics", "read", "Prometheus metrics (docs/metrics.md)", metrics),
    Route("GET", "/health", None, "200 while this node is a member", health, health=True),
    Route("GET", "/controller", None, "200 on the controller", controller, health=True),
    Route("GET", "/holder/{id}", None, "200 where the resource runs", holder, health=True),
    Route("GET", "/primary/{id}", None, "200 where the clone is primary", primary, health=True),
    Route("GET", "/replica/{id}", None, "200 where the clone is a replica", replica, health=True),
    Route("POST", "/v1/resources/{id}/move", "operate", "Run the resource on a node", move, OnNode),
    Route("POST", "/v1/resources/{id}/ban", "operate", "Never run it on a node", ban, OnNode),
    Route(
        "POST",
        "/v1/resources/{id}/clear",
        "operate",
        "Remove its moves and bans",
        clear,
        MaybeOnNode,
    ),
    Route(
        "POST",
        "/v1/resources/{id}/cleanup",
        "operate",
        "Forget its fail counts",
        cleanup,
        MaybeOnNode,
    ),
    Route("POST", "/v1/resources/{id}/stop", "operate", "Stop it everywhere", stop, Empty),
    Route("POST", "/v1/resources/{id}/start", "operate", "Undo a stop", start, Empty),
    Route("POST", "/v1/resources/{id}/restart", "operate", "Stop, wait, start", restart, Restart),
    Route(
        "POST",
        "/v1/nodes/{node}/standby",
        "operate",
        "Move everything off the node",
        _flag("standby", "standby", True),
        Empty,
    ),
    Route(
        "POST",
        "/v1/nodes/{node}/online",
        "operate",
        "Clear standby",
        _flag("online", "standby", False),
        Empty,
    ),
    Route(
        "POST",
        "/v1/nodes/{node}/maintenance",
        "operate",
        "Leave the node alone (off: end it)",
        _flag("maintenance", "maintenance", True),
        Maintenance,
    ),
    Route(
        "POST", "/v1/nodes/{node}/fence", "admin", "Fence the node, or confirm it off", fence, Fence
    ),
    Route(
        "POST",
        "/v1/config/plan",
        "admin",
        "Validate a cluster file; its difference and plan",
        config_plan,
        NewConfig,
        max_body=MAX_CONFIG + 4096,
    ),
    Route(
        "POST",
        "/v1/config/apply",
        "admin",
        "Apply a cluster file (config apply --yes)",
        config_apply,
        NewConfig,
        max_body=MAX_CONFIG + 4096,
    ),
)
