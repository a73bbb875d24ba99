"""Send one alert to a webhook: a JSON body, signed, retried with backoff, each try bounded.

The signature header is ``X-Hakeeper-Signature-256: sha256=<hex HMAC-SHA256 of the body>``,
keyed with the first line of the alert's ``secret_file`` (mode 0600, read at each delivery
so a rotated key is used at once). A receiver recomputes it over the raw body and compares
in constant time; the body holds the event's revision and time, so a replay is a repeat it
can drop.

A try fails on a connection error, a timeout (the whole try: connect, send, headers) or an
answer outside 2xx. Its body is never read: the connection is closed instead, so a receiver
that answers with a huge body costs nothing. 4xx answers other than 408 and 429 are not
retried: the same request will not fare better.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from hakeeper import __version__
from hakeeper.config.secret_file import read_secret_file
from hakeeper.errors import ConfigError
from hakeeper.runtime.alert_agents import Outcome

SIGNATURE_HEADER = "X-Hakeeper-Signature-256"
BACKOFF_CAP = 30.0
_RETRY_4XX = frozenset({408, 429})

Sleep = Callable[[float], Awaitable[None]]


def signature(key: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


async def post_webhook(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    *,
    secret_file: str,
    timeout: float,
    retries: int,
    backoff: float = 1.0,
    sleep: Sleep = asyncio.sleep,
) -> Outcome:
    """POST ``body`` to ``url`` until a 2xx answer, at most ``retries`` + 1 tries, waiting
    ``backoff`` × 2^n seconds (at most 30) between them."""
    reason = ""
    for attempt in range(1, retries + 2):
        try:
            # Read at each try: a rotated or mended file is used from the next one.
            key = read_secret_file(Path(secret_file)).current
        except ConfigError as exc:
            return Outcome(False, attempt, f"webhook secret: {exc}")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"hakeeper/{__version__}",
            SIGNATURE_HEADER: signature(key, body),
        }
        try:
            async with asyncio.timeout(timeout):
                response = await session.post(
                    url, data=body, headers=headers, allow_redirects=False
                )
                # Not read, not kept: the connection goes with it.
                response.close()
        except TimeoutError:
            reason = f"{url}: no answer within {timeout:g}s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            reason = f"{url}: {type(exc).__name__}: {str(exc)[:200]}"
        else:
            if 200 <= response.status < 300:
                return Outcome(True, attempt)
            reason = f"{url}: HTTP {response.status}"
            if 400 <= response.status < 500 and response.status not in _RETRY_4XX:
                return Outcome(False, attempt, reason)
        if attempt <= retries:
            await sleep(min(backoff * 2 ** (attempt - 1), BACKOFF_CAP))
    return Outcome(False, retries + 1, reason)
