"""The CLI as a client of a cluster's REST API: ``hakeeper --url URL ...``.

With ``--url`` (or ``$HAKEEPER_URL``) the operator commands do not open the engine: each
sends its action to the API, which runs the very same body (`hakeeper.api.actions`) on the
node it reaches, and prints the lines that body returned, with the same exit status. The
token comes from ``--token-file`` (a 0600 file) or ``$HAKEEPER_TOKEN``; an HTTPS API with a
certificate of its own CA is checked against ``--ca-file``.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from hakeeper.balancer.api_token import read_token_file
from hakeeper.errors import ConfigError, Unreachable
from hakeeper.runtime.election import Controller
from hakeeper.runtime.status_report import NodeRow, ResourceRow, StatusReport

#: Deadline of one request besides what the action itself may wait (restart's timeout).
REQUEST_TIMEOUT = 60.0
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


async def request(remote: Remote, call: Call) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {remote.token}"} if remote.token else {}
    tls: ssl.SSLContext | bool = True
    if remote.ca_file is not None:
        tls = ssl.create_default_context(cafile=str(remote.ca_file))
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
    status, body = asyncio.run(request(remote, call))
    if status != 200:
        error = body.get("error") if isinstance(body, dict) else None
        raise ConfigError(f"the API answered {status}: {error or body}")
    return body


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
