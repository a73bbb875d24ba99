"""The CLI as a client of a cluster's REST API: ``hakeeper --url URL ...``.

With ``--url`` (or ``$HAKEEPER_URL``) the operator commands do not open the engine: each
sends its action to the API, which runs the very same body (`hakeeper.api.actions`) on the
node it reaches, and prints the lines that body returned, with the same exit status. The
token comes from ``--token-file`` (a 0600 file) or ``$HAKEEPER_TOKEN``; an HTTPS API with a
certificate of its own CA is checked against ``--ca-file``.

``events --follow`` and ``status --watch`` read the API's server-sent events
(`stream_messages`): each read has a deadline (the server sends a keep-alive every 15 s, so
a silent connection is a dead one), and a broken stream is reopened from the last event
revision seen (``Last-Event-ID``), so nothing is lost or printed twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.http_exceptions import LineTooLong

from hakeeper.balancer.api_token import read_token_file
from hakeeper.errors import ConfigError, Unreachable
from hakeeper.runtime.election import Controller
from hakeeper.runtime.status_report import NodeRow, ResourceRow, StatusReport

#: Deadline of one request besides what the action itself may wait (restart's timeout).
REQUEST_TIMEOUT = 60.0
#: The longest a stream may stay silent: three of the server's 15 s keep-alives.
STREAM_READ_TIMEOUT = 45.0
#: The largest server-sent event accepted (a status document of a large cluster fits).
MAX_MESSAGE = 8 * 1024 * 1024
TOKEN_ENV = "HAKEEPER_TOKEN"


@dataclass(frozen=True, slots=True)
class Remote:
    url: str
    token: str | None
    ca_file: Path | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """One action as the API takes it."""

    method: str
    path: str
    body: dict[str, Any] | None = None
    #: Seconds the action itself may take (added to the request's deadline).
    extra: float = 0.0


_current: Remote | None = None


def configure(url: str | None, token_file: Path | None, ca_file: Path | None) -> None:
    """Called by the app's callback: every command after it goes through ``url``."""
    global _current
    if url is None:
        _current = None
        return
    if not url.startswith(("http://", "https://")) or any(ord(c) < 33 for c in url):
        raise ConfigError(f"--url {url!r}: give http://HOST:PORT or https://HOST:PORT")
    token = read_token_file(token_file) if token_file else os.environ.get(TOKEN_ENV) or None
    _current = Remote(url.rstrip("/"), token, ca_file)


def current() -> Remote | None:
    return _current


def _headers(remote: Remote) -> dict[str, str]:
    return {"Authorization": f"Bearer {remote.token}"} if remote.token else {}


def _tls(remote: Remote) -> ssl.SSLContext | bool:
    if remote.ca_file is not None:
        return ssl.create_default_context(cafile=str(remote.ca_file))
    return True


async def request(remote: Remote, call: Call) -> tuple[int, Any]:
    headers, tls = _headers(remote), _tls(remote)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT + call.extra)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(
                call.method, remote.url + call.path, json=call.body, headers=headers, ssl=tls
            ) as response,
        ):
            try:
                return response.status, await response.json(content_type=None)
            except ValueError:
                return response.status, {"error": f"HTTP {response.status}: not JSON"}
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise Unreachable(f"the API at {remote.url} did not answer ({exc or 'timeout'})") from exc


def answer(remote: Remote, call: Call) -> Any:
    """The JSON answer of a 200; any other status is a `ConfigError` with the API's words."""
    return asyncio.run(answer_async(remote, call))


async def answer_async(remote: Remote, call: Call) -> Any:
    """`answer` inside a running event loop."""
    status, body = await request(remote, call)
    if status != 200:
        error = body.get("error") if isinstance(body, dict) else None
        raise ConfigError(f"the API answered {status}: {error or body}")
    return body


@dataclass(frozen=True, slots=True)
class Message:
    """One server-sent event: its kind (``event`` or ``status``), id and decoded data."""

    kind: str
    id: int | None
    data: Any


class StreamRefused(ConfigError):
    """The API refused the stream for good (401, 403, 400): reconnecting cannot help."""


async def stream_messages(remote: Remote, since: int | None) -> AsyncGenerator[Message, None]:
    """The messages of ``/v1/events/stream`` (after event revision ``since``, when given)
    until the stream ends. `Unreachable` when it cannot be opened or goes silent (the caller
    reconnects); `StreamRefused` for a refusal; 503 (too many streams) is `Unreachable`."""
    headers = {**_headers(remote), "Accept": "text/event-stream"}
    if since is not None:
        headers["Last-Event-ID"] = str(since)
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=REQUEST_TIMEOUT, sock_read=STREAM_READ_TIMEOUT
    )
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(
                remote.url + "/v1/events/stream", headers=headers, ssl=_tls(remote)
            ) as response,
        ):
            if response.status != 200:
                try:
                    error = (await response.json(content_type=None)).get("error")
                except (ValueError, AttributeError, aiohttp.ClientError):
                    error = None
                text = f"the API answered {response.status}: {error or 'no reason given'}"
                if response.status in (400, 401, 403, 404):
                    raise StreamRefused(text)
                raise Unreachable(text)
            async for message in _parse(response.content):
                yield message
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise Unreachable(f"the stream of {remote.url} broke ({exc or 'silent too long'})") from exc


async def _parse(content: aiohttp.StreamReader) -> AsyncIterator[Message]:
    kind, ident, data, size = "message", None, [], 0
    while True:
        try:
            raw = await content.readuntil(b"\n", max_size=MAX_MESSAGE)
        except LineTooLong as exc:
            raise Unreachable(f"a server-sent event is larger than {MAX_MESSAGE} bytes") from exc
        if not raw:
            return  # the server ended the stream
        size += len(raw)
        if size > MAX_MESSAGE:
            raise Unreachable(f"a server-sent event is larger than {MAX_MESSAGE} bytes")
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if line:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                kind = value
            elif field == "id" and value.isdigit():
                ident = int(value)
            elif field == "data":
                data.append(value)
            continue  # a comment (": keep-alive") or a field: the message goes on
        if data:
            try:
                yield Message(kind, ident, json.loads("\n".join(data)))
            except json.JSONDecodeError as exc:
                raise Unreachable(f"a server-sent event is not JSON ({exc})") from exc
        kind, ident, data, size = "message", None, [], 0


def report_of(doc: dict[str, Any]) -> StatusReport:
    """The status report from the API's document (what `StatusReport.to_dict` wrote), for
    the same rendering as a local ``status``."""
    ctl = doc.get("controller")
    problems = [str(p) for p in doc.get("problems", [])]
    return StatusReport(
        cluster=doc["cluster"],
        quorum=doc["quorum"],
        controller=Controller(ctl["node"], ctl["term"]) if ctl else None,
        revision=doc.get("revision", 0),
        nodes=tuple(
            NodeRow(
                n["name"], n["state"], n["standby"], n["maintenance"], n["controller"], n["note"]
            )
            for n in doc.get("nodes", [])
        ),
        resources=tuple(
            ResourceRow(
                r["id"],
                r["unit"],
                r["target_role"],
                r["target_role_override"],
                tuple(r["running"]),
                tuple(r["assigned"]),
                r["epoch"],
                tuple(r["failcounts"]),
                tuple(r["why"]),
                tuple(r["pending"]),
            )
            for r in doc.get("resources", [])
        ),
        failed=tuple(p.removeprefix("failed: ") for p in problems if p.startswith("failed: ")),
        warnings=tuple(doc.get("warnings", [])),
    )
