"""Resource agents by scheme: a typed plug-in table (uvicorn's protocol table).

``table.make("ocf:heartbeat:Dummy", AgentContext(instance="db", ...))`` imports the class an
`AgentScheme` names and calls its ``from_spec`` (`hakeeper.agents.factory`), which validates
everything it can without running the service. Every problem is a `ConfigError` saying what
and how to fix it.

This package holds only `BUILTIN_AGENTS`, the kinds of this layer (``process``, ``ocf``,
``systemd``, ``lsb``, ``vip``). Components above it that run as resources add their own
schemes where they may be named, with `AgentTable.plus`, and the daemon gets the whole table
by injection: nothing here knows what lives above.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import cast

from hakeeper.agents.base import ResourceAgent
from hakeeper.agents.factory import AgentContext, AgentFactory
from hakeeper.errors import ConfigError
from hakeeper.model.plugin import load_plugin
from hakeeper.model.text import control_paths

# Instance names become file names (state files) and environment values.
_INSTANCE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@-]*")  # fullmatch: "$" accepts "\n"


@dataclass(frozen=True, slots=True)
class AgentScheme:
    """One agent kind: ``name``, the class that builds it, and the shape of its target.

    ``factory`` is ``"package.module:Class"``, imported on first use, so that a kind whose
    dependencies are missing fails with a clear message only where it is used. ``target``
    is how the part after ``name:`` is written (``<provider>:<type>``); empty when the
    scheme is the whole name (``process``, never ``process:<something>``).
    """

    name: str
    factory: str
    target: str = ""

    @property
    def usage(self) -> str:
        """How the config writes it: ``process``, ``ocf:<provider>:<type>``."""
        return f"{self.name}:{self.target}" if self.target else self.name


@dataclass(frozen=True, slots=True)
class AgentTable:
    """The agent kinds one program knows, by scheme name; builds and validates agents."""

    schemes: tuple[AgentScheme, ...]

    def __post_init__(self) -> None:
        names = [s.name for s in self.schemes]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"agent schemes registered twice: {', '.join(twice)}")

    def plus(self, *schemes: AgentScheme) -> AgentTable:
        """This table with ``schemes`` added (a name already here is refused)."""
        return AgentTable((*self.schemes, *schemes))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.schemes)

    def scheme(self, spec: str) -> tuple[AgentScheme, str]:
        """``"ocf:heartbeat:Dummy"`` → (the ``ocf`` scheme, ``"heartbeat:Dummy"``).

        ConfigError for an unknown scheme; each factory checks its own target's shape.
        """
        name, _, target = spec.strip().partition(":")
        for scheme in self.schemes:
            if scheme.name == name:
                return scheme, target
        known = ", ".join(s.usage for s in self.schemes)
        raise ConfigError(f"unknown resource agent {spec!r}; use one of: {known}")

    def factory(self, name: str) -> AgentFactory:
        """The class registered as ``name``, imported now; ConfigError if it cannot be."""
        scheme, _ = self.scheme(name)
        return cast(AgentFactory, load_plugin(scheme.factory, f"resource agent scheme {name!r}"))

    def make(self, spec: str, context: AgentContext) -> ResourceAgent:
        """The agent for one resource instance on this node, validated; ConfigError otherwise."""
        instance = context.instance
        if not _INSTANCE.fullmatch(instance):
            raise ConfigError(
                f"resource name {instance!r}: use letters, digits and _ . : @ - "
                "(it names state files and the agent's OCF_RESOURCE_INSTANCE)"
            )
        scheme, target = self.scheme(spec)
        # Again here, not only in the config: a value that bypassed validation must not reach
        # an agent's environment, argv or a unit name as a line of its own.
        for where, problem in control_paths("agent", spec):
            raise ConfigError(f"resource {instance!r}: {where}: {problem}")
        for where, problem in control_paths("params", dict(context.params)):
            raise ConfigError(f"resource {instance!r}: {where}: {problem}")
        if target and not scheme.target:
            raise ConfigError(f"agent {spec!r}: write just {scheme.name!r} (no ':' part)")
        return self.factory(scheme.name).from_spec(target, context)


BUILTIN_AGENTS = AgentTable(
    (
        AgentScheme("process", "hakeeper.agents.process:ProcessAgent"),
        AgentScheme("ocf", "hakeeper.agents.ocf:OcfAgent", "<provider>:<type>"),
        AgentScheme("systemd", "hakeeper.agents.systemd:SystemdAgent", "<unit>"),
        AgentScheme("lsb", "hakeeper.agents.lsb:LsbAgent", "<script>"),
        AgentScheme("vip", "hakeeper.agents.vip:VipAgent"),
    )
)
