"""What building a resource agent takes (`AgentContext`) and who builds one.

Every agent class offers ``from_spec(target, context)`` (`AgentFactory`): it validates what it
can without running the service and raises `ConfigError` naming the fix. The context holds
everything a plug-in table passes to any agent kind; each kind reads the fields it needs, so
a new field (a new kind's need) changes this one class, not every agent's signature.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from hakeeper.agents.base import ResourceAgent


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentContext:
    """One resource instance on this node, as its agent is built from the config.

    ``instance`` names the agent's state files and its ``OCF_RESOURCE_INSTANCE``;
    ``state_dir`` is where agents that keep state (``process``) keep it. ``ocf_root``
    (default ``$OCF_ROOT`` or ``/usr/lib/ocf``) and ``init_dir`` (LSB scripts, default
    ``/etc/init.d``) exist to point tests at fakes. ``secret_file`` is the cluster secret's
    path (``[coordination] secret_file``), for agents whose processes prove it to each other
    (the session store's peers); it travels by path and is never read here.
    ``cluster_env`` is what the cluster adds to every action's environment (an OCF agent's
    ``HA_SBIN_DIR`` with Pacemaker's tools, ``OCF_RESKEY_crm_feature_set``, ``PATH``).
    """

    instance: str
    state_dir: Path
    params: Mapping[str, object] = field(default_factory=dict)
    meta: Mapping[str, object] = field(default_factory=dict)
    ocf_root: Path | None = None
    init_dir: Path | None = None
    secret_file: Path | None = None
    cluster_env: Mapping[str, str] = field(default_factory=dict)


class AgentFactory(Protocol):
    """What each agent class registered in a plug-in table offers."""

    def from_spec(self, target: str, context: AgentContext) -> ResourceAgent:
        """The agent for ``context``; ``target`` is what follows ``<scheme>:`` (or "")."""
        ...


class AgentMaker(Protocol):
    """What the executor builds its agents with: an `AgentTable`, or a test's fake."""

    def make(self, spec: str, context: AgentContext) -> ResourceAgent:
        """The validated agent for the config's ``agent = spec``; ConfigError otherwise."""
        ...
