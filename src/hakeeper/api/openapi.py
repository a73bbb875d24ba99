"""The OpenAPI 3 document of the REST API, built from the route table it describes."""

from __future__ import annotations

import re
from typing import Any

from hakeeper.api import availability_route, plan_route
from hakeeper.api.routes import Route

_PARAM = re.compile(r"\{(\w+)\}")
_ERROR = {
    "description": "refused; the message says why and what to do",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}},
                "required": ["error"],
            }
        }
    },
}
_JSON = {"application/json": {"schema": {"type": "object"}}}


def _operation(route: Route) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {
            "description": "OK",
            "content": {"text/event-stream": {"schema": {"type": "string"}}}
            if route.stream
            else _JSON,
        },
        "400": _ERROR,
        "403": _ERROR,
        "503": _ERROR
        if not route.health
        else {"description": "not on this node", "content": _JSON},
    }
    operation: dict[str, Any] = {
        "operationId": (route.method + route.path)
        .replace("/", "_")
        .replace("{", "")
        .replace("}", ""),
        "summary": route.summary,
        "responses": responses,
    }
    if route.role is not None:
        responses["401"] = _ERROR
        operation["description"] = f"Needs the role {route.role} (read < operate < admin)."
        operation["security"] = [{"bearer": []}, {"clientCertificate": []}]
    else:
        operation["security"] = []
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(route.path)
    ]
    if route.path in ("/v1/events", "/v1/events/stream"):
        parameters.append(
            {"name": "since", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 0}}
        )  # fmt: skip
    if route.path == "/v1/plan":
        parameters.extend(plan_route.QUERY_PARAMETERS)
    if route.path == "/v1/availability":
        parameters.extend(availability_route.QUERY_PARAMETERS)
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        responses["413"] = _ERROR
        responses["415"] = _ERROR
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": route.body.model_json_schema()}},
        }
    return operation


def document(routes: tuple[Route, ...]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",  # JSON Schema 2020-12, as pydantic writes it
        "info": {"title": "hakeeper", "version": "1", "description": "The cluster's REST API."},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "clientCertificate": {"type": "mutualTLS"},
            }
        },
    }
