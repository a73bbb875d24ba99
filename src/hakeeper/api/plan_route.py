"""``GET /v1/plan?what_if=Q&what_if=Q``: the scheduler's dry run from the running cluster,
computed by the code ``hakeeper plan --live`` runs (`hakeeper.runtime.live_plan`), so
``hakeeper --url URL plan`` prints what a cluster host prints.

Role ``read``: it changes nothing. The questions are bounded in count and length and may
not hold control characters; a question the simulator does not understand is a 400 with its
words (the list of questions is in ``hakeeper plan --help``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from aiohttp import web

from hakeeper.errors import ConfigError
from hakeeper.runtime.live_plan import live_plan
from hakeeper.runtime.node_view import NodeView

#: At most this many what-if questions, each at most `MAX_QUESTION` characters.
MAX_QUESTIONS = 16
MAX_QUESTION = 256
PLAN_TIMEOUT = 15.0
#: The route's query, as the OpenAPI document describes it.
QUERY_PARAMETERS: list[dict[str, object]] = [
    {
        "name": "what_if",
        "in": "query",
        "required": False,
        "schema": {
            "type": "array",
            "maxItems": MAX_QUESTIONS,
            "items": {"type": "string", "maxLength": MAX_QUESTION},
        },
        "explode": True,
    }
]


class HasView(Protocol):
    """What this route needs of the server's context (`hakeeper.api.routes.Context`)."""

    @property
    def view(self) -> NodeView: ...


def questions_of(request: web.Request) -> list[str]:
    asked = request.query.getall("what_if", [])
    if len(asked) > MAX_QUESTIONS:
        raise ConfigError(f"what_if: at most {MAX_QUESTIONS} questions")
    for question in asked:
        if len(question) > MAX_QUESTION or any(ord(c) < 32 or ord(c) == 127 for c in question):
            raise ConfigError(
                f"what_if: a question is at most {MAX_QUESTION} characters, without control "
                'characters (e.g. "node n1 down")'
            )
    return asked


async def plan(ctx: HasView, request: web.Request, _: None) -> web.StreamResponse:
    asked = questions_of(request)
    async with asyncio.timeout(PLAN_TIMEOUT):
        done = await live_plan(ctx.view.store, ctx.view.spec(), time.time(), asked)
    return web.json_response(
        {
            "cluster": done.spec.options.name,
            "what_if": asked,
            "transition": done.transition.to_dict(),
            "dot": done.transition.to_dot(done.spec.options.name),
        }
    )
