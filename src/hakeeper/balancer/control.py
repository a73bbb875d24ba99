"""Run-time changes to servers, as one typed command applied the same way everywhere.

The REST API, the CLI and (with several workers) the parent's pipe to each worker all carry
a `ServerCommand`; `apply_command` is the only place that turns one into state changes, so a
worker and the process that owns the API agree by construction.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hakeeper.balancer.servers import Backend, Server
from hakeeper.errors import ConfigError

Action = Literal["ready", "drain", "maint", "weight", "up", "down"]


class ServerCommand(BaseModel):
    """``ready``/``drain``/``maint`` set the admin state (HAProxy's ``set server … state``);
    ``weight`` sets the weight (0 drains); ``up``/``down`` carry a health verdict from the
    process that runs the checks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str
    server: str
    action: Action
    weight: int | None = Field(default=None, ge=0, le=256)
    reason: str = ""


def find_server(backends: dict[str, Backend], backend: str, server: str) -> tuple[Backend, Server]:
    be = backends.get(backend)
    if be is None:
        raise ConfigError(f"no backend {backend!r}; known: {sorted(backends)}")
    srv = be.servers.get(server)
    if srv is None:
        raise ConfigError(
            f"no server {server!r} in backend {backend!r}; known: {sorted(be.servers)}"
        )
    return be, srv


def apply_command(backends: dict[str, Backend], cmd: ServerCommand, now: float) -> Server:
    backend, server = find_server(backends, cmd.backend, cmd.server)
    if cmd.action in ("ready", "drain", "maint"):
        backend.set_admin(server, cmd.action)
    elif cmd.action == "weight":
        if cmd.weight is None:
            raise ConfigError("action weight needs a weight (0..256)")
        backend.set_weight(server, cmd.weight, now)
    else:
        backend.set_up(server, cmd.action == "up", now, cmd.reason or "told by the checker")
    return server
