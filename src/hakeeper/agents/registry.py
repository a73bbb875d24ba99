"""Resource agents by scheme, resolved once at config load (uvicorn's protocol table).

``make_agent("ocf:heartbeat:Dummy", "db", params, meta, state_dir=...)`` imports the class
named in `AGENT_SCHEMES` and calls its ``from_spec``, which validates everything it can
without running the service (the agent exists, required parameters are there). Every
problem is a `ConfigError` saying what and how to fix it. Later schemes (``vip``,
``balancer``, ``sessions``) register the same way: one line here.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, cast

from hakeeper.agents.base import ResourceAgent
from hakeeper.errors import ConfigError
from hakeeper.model.text import control_paths

AGENT_SCHEMES: dict[str, str] = {
    "process": "hakeeper.agents.process:ProcessAgent",
    "ocf": "hakeeper.agents.ocf:OcfAgent",
    "systemd": "hakeeper.agents.systemd:SystemdAgent",
    "lsb": "hakeeper.agents.lsb:LsbAgent",
    "balancer": "hakeeper.balancer.agent:BalancerAgent",
    "vip": "hakeeper.agents.vip:VipAgent",
    "sessions": "hakeeper.sessions.agent:SessionsAgent",
}

#: Schemes that are whole names: ``process``, never ``process:<something>``.
TARGETLESS = frozenset({"process", "vip", "balancer", "sessions"})

# Instance names become file names (state files) and environment values.
_INSTANCE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@-]*")  # fullmatch: "$" accepts "\n"


class AgentFactory(Protocol):
    """What each registered class offers: build and validate from the config's words."""

    def from_spec(
        self,
        target: str,
        instance: str,
        params: Mapping[str, object],
        meta: Mapping[str, object],
        *,
        state_dir: Path,
        ocf_root: Path | None = None,
        init_dir: Path | None = None,
        secret_file: Path | None = None,
    ) -> ResourceAgent: ...


def split_spec(spec: str) -> tuple[str, str]:
    """``"ocf:heartbeat:Dummy"`` → ``("ocf", "heartbeat:Dummy")``, ``"process"`` → no target.

    ConfigError for an unknown scheme; each factory checks its own target's shape.
    """
    scheme, _, target = spec.strip().partition(":")
    if scheme not in AGENT_SCHEMES:
        raise ConfigError(
            f"unknown resource agent {spec!r}; use one of: process, ocf:<provider>:<type>, "
            "systemd:<unit>, lsb:<script>"
        )
    return scheme, target


def agent_factory(scheme: str) -> AgentFactory:
    module_name, _, attr = AGENT_SCHEMES[scheme].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"resource agent scheme {scheme!r} needs {exc.name or module_name}, which is not "
            "installed; install hakeeper with its dependencies"
        ) from exc
    return cast(AgentFactory, getattr(module, attr))


def make_agent(
    spec: str,
    instance: str,
    params: Mapping[str, object],
    meta: Mapping[str, object],
    *,
    state_dir: Path,
    ocf_root: Path | None = None,
    init_dir: Path | None = None,
    secret_file: Path | None = None,
) -> ResourceAgent:
    """The agent for one resource instance on this node, validated; ConfigError otherwise.

    ``ocf_root`` defaults to ``$OCF_ROOT`` or ``/usr/lib/ocf``; ``init_dir`` (LSB scripts)
    to ``/etc/init.d``. Both exist to point tests at fakes. ``secret_file`` is the cluster
    secret's path (``[coordination] secret_file``), for agents whose processes prove it to
    each other (the session store's peers); it is passed on by path, never read here.
    """
    if not _INSTANCE.fullmatch(instance):
        raise ConfigError(
            f"resource name {instance!r}: use letters, digits and _ . : @ - "
            "(it names state files and the agent's OCF_RESOURCE_INSTANCE)"
        )
    scheme, target = split_spec(spec)
    # Again here, not only in the config: a value that bypassed validation must not reach
    # an agent's environment, argv or a unit name as a line of its own.
    for where, problem in control_paths("agent", spec):
        raise ConfigError(f"resource {instance!r}: {where}: {problem}")
    for where, problem in control_paths("params", dict(params)):
        raise ConfigError(f"resource {instance!r}: {where}: {problem}")
    if target and scheme in TARGETLESS:
        raise ConfigError(f"agent {spec!r}: write just {scheme!r} (no ':' part)")
    factory = agent_factory(scheme)
    return factory.from_spec(
        target,
        instance,
        params,
        meta,
        state_dir=state_dir,
        ocf_root=ocf_root,
        init_dir=init_dir,
        secret_file=secret_file,
    )
