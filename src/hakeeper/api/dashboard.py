"""The dashboard: one static page (`dashboard.html` and its `dashboard.js`, no build step)
served at ``/``.

It holds no data: it reads ``/v1/status``, ``/v1/events`` and ``/v1/availability`` (again
on each failover the stream shows; the page's own ``?window=`` and ``?target=`` are passed on)
and follows ``/v1/events/stream`` with the token the operator types (kept in the tab's
sessionStorage).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from aiohttp import web

#: The page may run only its own script and talk only to its own origin.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


@cache
def _file(name: str) -> bytes:
    return files("hakeeper.api").joinpath(name).read_bytes()


def dashboard_page() -> web.Response:
    return _static("dashboard.html", "text/html")


def dashboard_script() -> web.Response:
    return _static("dashboard.js", "text/javascript")


def _static(name: str, content_type: str) -> web.Response:
    return web.Response(
        body=_file(name),
        content_type=content_type,
        charset="utf-8",
        headers={
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        },
    )
